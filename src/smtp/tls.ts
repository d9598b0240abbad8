/**
 * The TLS certificate of the SMTP listeners: the files named in the configuration, or a
 * self-signed certificate generated at first start into `DATA_DIR/tls/` (`cert.pem`, and
 * `key.pem` with mode 0600). A self-signed certificate is enough for SMTP: senders use
 * STARTTLS opportunistically and do not check the certificate (RFC 7435).
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  /** Where they came from, for the start-up log line. */
  source: 'configured' | 'generated' | 'generated-earlier';
  certPath: string;
  keyPath: string;
}

export interface TlsSettings {
  cert?: string | null;
  key?: string | null;
}

/** Days a generated certificate is valid. */
const GENERATED_VALIDITY_DAYS = 3650;

/**
 * Loads the configured certificate and key, or generates a self-signed pair for `hostname`
 * under `dataDir` when neither is configured. Setting only one of the two is an error.
 */
export async function loadTlsMaterial(
  settings: TlsSettings,
  dataDir: string,
  hostname: string,
): Promise<TlsMaterial> {
  if (settings.cert && settings.key) {
    const [cert, key] = await Promise.all([readFile(settings.cert), readFile(settings.key)]);
    return { cert, key, source: 'configured', certPath: settings.cert, keyPath: settings.key };
  }
  if (settings.cert || settings.key) {
    throw new Error(
      'tls.cert and tls.key must be set together: set both, or neither to generate a certificate',
    );
  }

  const directory = join(dataDir, 'tls');
  const certPath = join(directory, 'cert.pem');
  const keyPath = join(directory, 'key.pem');
  const existing = await readPair(certPath, keyPath);
  if (existing) return { ...existing, source: 'generated-earlier', certPath, keyPath };

  await mkdir(directory, { recursive: true, mode: 0o700 });
  await generateSelfSigned(certPath, keyPath, hostname);
  const generated = await readPair(certPath, keyPath);
  if (!generated) throw new Error(`generated TLS files are missing in ${directory}`);
  return { ...generated, source: 'generated', certPath, keyPath };
}

async function readPair(certPath: string, keyPath: string) {
  try {
    const [cert, key] = await Promise.all([readFile(certPath), readFile(keyPath)]);
    return { cert, key };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Runs `openssl req -x509` into temporary files and renames them into place, so two processes
 * starting at once never read a half-written pair. The key file is created with mode 0600
 * before openssl writes to it, so the key is never readable by others, even briefly.
 */
async function generateSelfSigned(certPath: string, keyPath: string, hostname: string) {
  const suffix = `.tmp-${process.pid}-${Date.now()}`;
  const tempCert = certPath + suffix;
  const tempKey = keyPath + suffix;
  const keyFile = await open(tempKey, 'wx', 0o600);
  await keyFile.close();
  try {
    await execFileAsync('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-sha256',
      '-days',
      String(GENERATED_VALIDITY_DAYS),
      '-subj',
      `/CN=${hostname}`,
      '-addext',
      `subjectAltName=DNS:${hostname}`,
      '-keyout',
      tempKey,
      '-out',
      tempCert,
    ]);
    await chmod(tempKey, 0o600);
    // Check the output parses before it replaces anything.
    new X509Certificate(await readFile(tempCert));
    await rename(tempKey, keyPath);
    await rename(tempCert, certPath);
  } catch (error) {
    await rm(tempKey, { force: true });
    await rm(tempCert, { force: true });
    throw new Error(
      `generating a self-signed certificate with openssl failed: ${(error as Error).message}`,
    );
  }
}
