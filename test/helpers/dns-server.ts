/**
 * An authoritative DNS server for tests, on 127.0.0.1 over UDP and TCP on one free port.
 *
 * It serves MX, A, AAAA, TXT (one or several strings) and CNAME records, given as objects or as
 * a BIND-style zone file, and can answer SERVFAIL or stay silent (a timeout) for chosen names.
 * It does not recurse, sign (DNSSEC) or serve other record types: a question it has no record
 * for gets NODATA when the name exists and NXDOMAIN otherwise.
 *
 *   const dns = await startDnsServer({ records: [{ name: 'example.test', type: 'MX',
 *     priority: 10, exchange: 'mx.example.test' }] });
 *   const fromFile = await startDnsServer({ zoneFile: 'test/fixtures/example.zone' });
 *   resolver.setServers([dns.address]);   // '127.0.0.1:PORT'
 *   dns.set(zoneText);                    // replace every record
 *   dns.fail('example.test', 'servfail'); // or 'timeout', or undefined to answer again
 *   await dns.close();
 */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import * as packet from 'dns-packet';

export type DnsRecord =
  | { name: string; type: 'MX'; priority: number; exchange: string; ttl?: number }
  | { name: string; type: 'A' | 'AAAA'; address: string; ttl?: number }
  | { name: string; type: 'TXT'; value: string | string[]; ttl?: number }
  | { name: string; type: 'CNAME'; target: string; ttl?: number };

/** How the server misbehaves for a name: SERVFAIL, or no reply at all so the client times out. */
export type DnsFailure = 'servfail' | 'timeout';

export interface DnsServerOptions {
  /** Records as objects, or the text of a BIND-style zone file. */
  records?: DnsRecord[] | string;
  /** Path of a BIND-style zone file, served in addition to `records`. */
  zoneFile?: string;
  /** Origin for relative names of a zone file without `$ORIGIN`. */
  origin?: string;
  failures?: Record<string, DnsFailure>;
}

export interface DnsServer {
  host: string;
  port: number;
  /** `127.0.0.1:PORT`, the form `dns.servers` and `Resolver#setServers` take. */
  address: string;
  /** Replace every record; a string is parsed as a zone file. */
  set(records: DnsRecord[] | string, origin?: string): void;
  /** Make a name fail (`servfail`, `timeout`) or, with undefined, answer normally again. */
  fail(name: string, failure: DnsFailure | undefined): void;
  /** Questions received so far, as `name TYPE`, for tests that count lookups. */
  queries: string[];
  close(): Promise<void>;
}

const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;
const DEFAULT_TTL = 300;
/** RFC 1035 section 4.2.1: without EDNS a UDP reply carries at most 512 octets. */
const CLASSIC_UDP_SIZE = 512;
/** A depth limit on CNAME chains, so a loop in a test zone cannot hang a lookup. */
const MAX_CNAME_CHAIN = 8;

/** Lower-case a name and drop its trailing dot, the key the zone is indexed by. */
export function normalizeName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

export async function startDnsServer(options: DnsServerOptions = {}): Promise<DnsServer> {
  const fromFile = options.zoneFile
    ? parseZoneFile(readFileSync(options.zoneFile, 'utf8'), options.origin)
    : [];
  let zone = indexRecords([...toRecords(options.records ?? [], options.origin), ...fromFile]);
  const failures = new Map<string, DnsFailure>();
  for (const [name, failure] of Object.entries(options.failures ?? {})) {
    failures.set(normalizeName(name), failure);
  }
  const queries: string[] = [];

  const respond = (query: Buffer, transport: 'udp' | 'tcp'): Buffer | undefined => {
    let request: packet.DecodedPacket;
    try {
      request = packet.decode(query);
    } catch {
      return undefined;
    }
    const question = request.questions?.[0];
    if (question) queries.push(`${normalizeName(question.name)} ${question.type}`);
    const failure = question ? failures.get(normalizeName(question.name)) : undefined;
    if (failure === 'timeout') return undefined;
    const reply = buildReply(request, zone, failure === 'servfail');
    const encoded = packet.encode(reply);
    if (transport === 'udp' && encoded.length > udpLimit(request)) {
      // RFC 1035 section 4.2.1: set TC and let the client repeat the question over TCP.
      return packet.encode({
        ...reply,
        flags: (reply.flags ?? 0) | packet.TRUNCATED_RESPONSE,
        answers: [],
      });
    }
    return encoded;
  };

  const { udp, tcp, port } = await bindBoth(respond);
  return {
    host: '127.0.0.1',
    port,
    address: `127.0.0.1:${port}`,
    queries,
    set(records, origin) {
      zone = indexRecords(toRecords(records, origin ?? options.origin));
    },
    fail(name, failure) {
      if (failure) failures.set(normalizeName(name), failure);
      else failures.delete(normalizeName(name));
    },
    async close() {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}

function toRecords(records: DnsRecord[] | string, origin: string | undefined): DnsRecord[] {
  return typeof records === 'string' ? parseZoneFile(records, origin) : records;
}

function indexRecords(records: DnsRecord[]): Map<string, DnsRecord[]> {
  const zone = new Map<string, DnsRecord[]>();
  for (const record of records) {
    const name = normalizeName(record.name);
    const list = zone.get(name) ?? [];
    list.push(record);
    zone.set(name, list);
  }
  return zone;
}

function udpLimit(request: packet.DecodedPacket): number {
  const opt = request.additionals?.find((answer) => answer.type === 'OPT');
  return opt && 'udpPayloadSize' in opt
    ? Math.max(opt.udpPayloadSize, CLASSIC_UDP_SIZE)
    : CLASSIC_UDP_SIZE;
}

function buildReply(
  request: packet.DecodedPacket,
  zone: Map<string, DnsRecord[]>,
  servfail: boolean,
): packet.Packet {
  const questions = request.questions ?? [];
  const base = {
    type: 'response' as const,
    id: request.id ?? 0,
    questions,
    flags: packet.AUTHORITATIVE_ANSWER | ((request.flags ?? 0) & packet.RECURSION_DESIRED),
  };
  const question = questions[0];
  if (servfail || !question) return { ...base, flags: base.flags | RCODE_SERVFAIL };

  const answers: packet.Answer[] = [];
  let name = normalizeName(question.name);
  for (let depth = 0; depth < MAX_CNAME_CHAIN; depth++) {
    const records = zone.get(name) ?? [];
    const matching = records.filter((record) => record.type === question.type);
    if (matching.length > 0) {
      answers.push(...matching.map(toAnswer));
      break;
    }
    // RFC 1034 section 3.6.2: a CNAME answers every type, and the server follows it in its zone.
    const alias = records.find((record) => record.type === 'CNAME');
    if (!alias || alias.type !== 'CNAME') break;
    answers.push(toAnswer(alias));
    name = normalizeName(alias.target);
  }
  if (answers.length > 0 || nameExists(zone, normalizeName(question.name))) {
    return { ...base, answers };
  }
  return { ...base, flags: base.flags | RCODE_NXDOMAIN };
}

/** A name exists when it owns records or is an empty non-terminal above names that do. */
function nameExists(zone: Map<string, DnsRecord[]>, name: string): boolean {
  if (zone.has(name)) return true;
  const suffix = `.${name}`;
  for (const owner of zone.keys()) {
    if (owner.endsWith(suffix)) return true;
  }
  return false;
}

function toAnswer(record: DnsRecord): packet.Answer {
  const common = {
    name: normalizeName(record.name),
    ttl: record.ttl ?? DEFAULT_TTL,
    class: 'IN' as const,
  };
  switch (record.type) {
    case 'MX':
      return {
        ...common,
        type: 'MX',
        data: { preference: record.priority, exchange: normalizeName(record.exchange) },
      };
    case 'A':
    case 'AAAA':
      return { ...common, type: record.type, data: record.address };
    case 'TXT':
      return { ...common, type: 'TXT', data: txtStrings(record.name, record.value) };
    case 'CNAME':
      return { ...common, type: 'CNAME', data: normalizeName(record.target) };
  }
}

/**
 * The character-strings of a TXT record. A single string is split into strings of at most 255
 * octets, as a zone file publishes a long DKIM key. An array is served as given, so tests can
 * publish a value split in the wrong place, but a string over 255 octets cannot be encoded
 * (RFC 1035 section 3.3) and is rejected. The result is a copy, because dns-packet replaces the
 * strings of the array it encodes with Buffers.
 */
function txtStrings(name: string, value: string | string[]): Buffer[] {
  if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8');
    const strings: Buffer[] = [];
    for (let start = 0; start < bytes.length; start += 255) {
      strings.push(bytes.subarray(start, start + 255));
    }
    return strings.length > 0 ? strings : [Buffer.alloc(0)];
  }
  return value.map((text) => {
    const bytes = Buffer.from(text, 'utf8');
    if (bytes.length > 255) {
      throw new RangeError(`TXT string for ${name} is ${bytes.length} octets; the maximum is 255`);
    }
    return bytes;
  });
}

type Responder = (query: Buffer, transport: 'udp' | 'tcp') => Buffer | undefined;

/** Bind UDP on a free port, then TCP on the same one; retry when another process holds it. */
async function bindBoth(
  respond: Responder,
): Promise<{ udp: dgram.Socket; tcp: net.Server; port: number }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(0, '127.0.0.1', () => resolve());
    });
    const port = udp.address().port;
    const tcp = net.createServer((socket) => serveTcp(socket, respond));
    const listening = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (!listening) {
      udp.close();
      continue;
    }
    udp.on('message', (message, remote) => {
      const reply = respond(message, 'udp');
      if (reply) udp.send(reply, remote.port, remote.address);
    });
    return { udp, tcp, port };
  }
  throw new Error('Failed to bind UDP and TCP on one free port of 127.0.0.1 in 20 attempts');
}

/** RFC 1035 section 4.2.2: over TCP every message is preceded by its two-octet length. */
function serveTcp(socket: net.Socket, respond: Responder): void {
  let buffered = Buffer.alloc(0);
  socket.setNoDelay(true);
  socket.on('error', () => socket.destroy());
  socket.on('data', (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 2) {
      const length = buffered.readUInt16BE(0);
      if (buffered.length < 2 + length) return;
      const reply = respond(buffered.subarray(2, 2 + length), 'tcp');
      buffered = buffered.subarray(2 + length);
      if (reply) {
        const prefix = Buffer.alloc(2);
        prefix.writeUInt16BE(reply.length);
        socket.write(Buffer.concat([prefix, reply]));
      }
    }
  });
}

/**
 * Parse a BIND-style zone file (RFC 1035 section 5): `$ORIGIN`, `$TTL`, `@`, relative names,
 * a blank owner repeating the previous one, optional TTL and class, parentheses across lines,
 * `;` comments and quoted strings with backslash escapes. Record types other than MX, A, AAAA,
 * TXT and CNAME are skipped, so a zone copied from elsewhere may keep its SOA and NS lines.
 */
export function parseZoneFile(text: string, origin?: string): DnsRecord[] {
  let currentOrigin = origin ? normalizeName(origin) : '';
  let defaultTtl = DEFAULT_TTL;
  let previousOwner = currentOrigin;
  const records: DnsRecord[] = [];

  for (const { tokens, startsWithBlank } of logicalLines(text)) {
    const first = tokens[0];
    if (first === undefined) continue;
    if (first.toUpperCase() === '$ORIGIN') {
      currentOrigin = normalizeName(tokens[1] ?? '');
      continue;
    }
    if (first.toUpperCase() === '$TTL') {
      defaultTtl = Number(tokens[1]);
      continue;
    }
    let index = 0;
    let owner = previousOwner;
    if (!startsWithBlank) {
      owner = absoluteName(first, currentOrigin);
      index = 1;
    }
    previousOwner = owner;
    let ttl = defaultTtl;
    // TTL and class may come in either order before the type (RFC 1035 section 5.1).
    for (let i = 0; i < 2; i++) {
      const token = tokens[index];
      if (token !== undefined && /^\d+$/.test(token)) {
        ttl = Number(token);
        index++;
      } else if (token !== undefined && /^(IN|CH|HS|CS)$/i.test(token)) {
        index++;
      }
    }
    const type = (tokens[index] ?? '').toUpperCase();
    const data = tokens.slice(index + 1);
    const record = zoneRecord(owner, type, data, ttl, currentOrigin);
    if (record) records.push(record);
  }
  return records;
}

function zoneRecord(
  owner: string,
  type: string,
  data: string[],
  ttl: number,
  origin: string,
): DnsRecord | undefined {
  switch (type) {
    case 'MX':
      return {
        name: owner,
        type: 'MX',
        priority: Number(data[0]),
        exchange: data[1] === '.' ? '' : absoluteName(data[1] ?? '', origin),
        ttl,
      };
    case 'A':
    case 'AAAA':
      return { name: owner, type, address: data[0] ?? '', ttl };
    case 'TXT':
      return { name: owner, type: 'TXT', value: data, ttl };
    case 'CNAME':
      return { name: owner, type: 'CNAME', target: absoluteName(data[0] ?? '', origin), ttl };
    default:
      return undefined;
  }
}

function absoluteName(name: string, origin: string): string {
  if (name === '@') return origin;
  if (name.endsWith('.')) return normalizeName(name);
  return normalizeName(origin ? `${name}.${origin}` : name);
}

/** Split zone text into logical lines of tokens, joining lines inside parentheses. */
function* logicalLines(text: string): Generator<{ tokens: string[]; startsWithBlank: boolean }> {
  let tokens: string[] = [];
  let startsWithBlank = false;
  let depth = 0;
  let atLineStart = true;
  let i = 0;
  while (i < text.length) {
    const char = text[i]!;
    if (atLineStart && depth === 0) {
      startsWithBlank = char === ' ' || char === '\t';
      atLineStart = false;
    }
    if (char === '\n') {
      i++;
      atLineStart = true;
      if (depth === 0) {
        yield { tokens, startsWithBlank };
        tokens = [];
      }
    } else if (char === ';') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (char === '(' || char === ')') {
      depth += char === '(' ? 1 : -1;
      i++;
    } else if (char === ' ' || char === '\t' || char === '\r') {
      i++;
    } else if (char === '"') {
      const [value, end] = readQuoted(text, i + 1);
      tokens.push(value);
      i = end;
    } else {
      let end = i;
      while (end < text.length && !/[\s;()"]/.test(text[end]!)) end++;
      tokens.push(text.slice(i, end));
      i = end;
    }
  }
  if (tokens.length > 0) yield { tokens, startsWithBlank };
}

/** Read a quoted string from `start` (after the quote); `\X` is X and `\DDD` a decimal octet. */
function readQuoted(text: string, start: number): [string, number] {
  let value = '';
  let i = start;
  while (i < text.length && text[i] !== '"') {
    if (text[i] === '\\') {
      const digits = text.slice(i + 1, i + 4);
      if (/^\d{3}$/.test(digits)) {
        value += String.fromCharCode(Number(digits));
        i += 4;
      } else {
        value += text[i + 1] ?? '';
        i += 2;
      }
    } else {
      value += text[i];
      i++;
    }
  }
  return [value, i + 1];
}
