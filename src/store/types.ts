/**
 * The store interface: everything Herald keeps durably. SQLite (WAL) implements it for one
 * machine and PostgreSQL for several nodes, so every method is async and every write that a
 * caller awaits is committed to disk when its promise resolves.
 */

/** A domain Herald receives and signs mail for. */
export interface Domain {
  id: number;
  name: string;
  /** Envelope-sender domain for SRS when forwarding from this domain; null uses the global one. */
  srsDomain: string | null;
  /** Organisation that owns the domain; null while organisations are not in use. */
  organisationId: number | null;
  createdAt: Date;
}

export type DkimKeyAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

/**
 * A DKIM key. `active` keys sign; `pending` keys are published but not used yet (rotation);
 * `retired` keys stay published for a grace period and no longer sign.
 */
export interface DkimKeyRecord {
  id: number;
  domainId: number;
  selector: string;
  algorithm: DkimKeyAlgorithm;
  /**
   * Path of the PEM private key file, mode 0600, on the node or CLI run that created the key.
   * The store also keeps the PEM itself (see `Store.getDkimPrivateKey`). Records leave it
   * out, so key listings do not carry it.
   */
  privateKeyPath: string;
  /** The TXT record value to publish, `v=DKIM1; k=...; p=...`. */
  publicRecord: string;
  status: 'active' | 'pending' | 'retired';
  createdAt: Date;
}

/** A DKIM key as `Store.addDkimKey` takes it: the record's fields and the private key. */
export interface NewDkimKey extends Omit<DkimKeyRecord, 'id' | 'createdAt'> {
  /**
   * PKCS#8 PEM of the private key. Null stores only the path, like rows created before the
   * store kept the PEM.
   */
  privateKeyPem: string | null;
}

/**
 * What to do with forwarded mail that would fail DMARC at the destination: forward unchanged,
 * rewrite From to a Herald address with Reply-To set to the author, or reject at end of DATA.
 */
export type DmarcForwardPolicy = 'forward' | 'rewrite-from' | 'reject';

export interface Alias {
  id: number;
  domainId: number;
  /** Lower-cased local part, or `*` for the catch-all of the domain. */
  localPart: string;
  targets: string[];
  enabled: boolean;
  dmarcPolicy: DmarcForwardPolicy;
  createdAt: Date;
}

export interface Credential {
  id: number;
  domainId: number;
  username: string;
  /** scrypt hash in the form `scrypt$N$r$p$salt$hash` (base64 fields); never the password. */
  passwordHash: string;
  createdAt: Date;
}

/** Why a message entered the queue; decides SRS, bounce routing and reporting. */
export type MessageOrigin = 'inbound' | 'forward' | 'submission' | 'bounce' | 'campaign';

export interface NewMessage {
  /** The full message as it will be transmitted, CRLF line endings. */
  body: Buffer;
  origin: MessageOrigin;
  /** Envelope sender as received (before SRS), `''` for the null sender. */
  originalSender: string;
  /** Client address and HELO name, for logs. */
  clientAddress?: string;
  recipients: NewRecipient[];
}

export interface NewRecipient {
  recipient: string;
  /** Envelope sender for this recipient's delivery (SRS-rewritten when forwarded). */
  sender: string;
  /** Who gets the DSN when this recipient fails: `''` means nobody (null sender). */
  bounceTo: string;
  /** Campaign and subscriber this delivery belongs to, when it comes from a campaign. */
  campaignId?: number;
  subscriberId?: number;
}

export type QueueStatus = 'queued' | 'deferred' | 'delivered' | 'failed';

/** One recipient of one message: the unit the delivery workers claim. */
export interface QueueEntry {
  id: number;
  /** Queue id of the message, a short opaque string like Postfix's (`4bX9kq2m7Hz`). */
  messageId: string;
  recipient: string;
  /** Lower-cased domain of the recipient, for grouping deliveries by destination. */
  recipientDomain: string;
  sender: string;
  bounceTo: string;
  origin: MessageOrigin;
  status: QueueStatus;
  attempts: number;
  createdAt: Date;
  nextAttemptAt: Date;
  lastReply: string | null;
  /** Enhanced status code of the last attempt (added with the SQLite store; optional so that
   * code building entries by hand still compiles). */
  lastDsn?: string | null;
  campaignId: number | null;
  subscriberId: number | null;
}

/** The verdict of one delivery attempt, decided by the delivery module, applied by the queue. */
export interface AttemptOutcome {
  status: 'delivered' | 'deferred' | 'failed';
  /** The remote reply (`250 2.0.0 Ok: queued as X`) or a local explanation. */
  reply: string;
  /** Host name or address of the MX that answered; null when none was reached. */
  mx: string | null;
  /** Enhanced status code (RFC 3463) such as `5.1.1`. */
  dsn: string;
  /** When a deferred entry is due again. */
  nextAttemptAt?: Date;
}

export interface QueueEvent {
  id: number;
  entryId: number;
  messageId: string;
  time: Date;
  kind: 'queued' | 'attempt' | 'retry' | 'deleted';
  mx: string | null;
  reply: string | null;
  /** Enhanced status code of an attempt (added with the SQLite store). */
  dsn?: string | null;
  verdict: string;
}

/** What the queue keeps about a message besides its body (added for `herald queue show`). */
export interface MessageInfo {
  messageId: string;
  origin: MessageOrigin;
  originalSender: string;
  clientAddress: string | null;
  size: number;
  createdAt: Date;
}

export interface ClaimOptions {
  /** Node identity that holds the lease. */
  owner: string;
  limit: number;
  /** How long the claim lasts before other workers may take the entry again. */
  leaseMs: number;
  now?: Date;
}

export interface QueueFilter {
  status?: QueueStatus;
  recipientDomain?: string;
  limit?: number;
}

/** Short opaque tokens for senders whose SRS address would exceed 64 octets. */
export interface SrsTokenRecord {
  token: string;
  original: string;
  expiresAt: Date;
}

/**
 * One node of a cluster as the store sees it: a lease owner, when it was last seen claiming or
 * renewing leases, and how much work it holds (added with the PostgreSQL backend).
 */
export interface NodeStatus {
  /** Lease owner name, `hostname:pid:random` for the delivery workers of `herald serve`. */
  name: string;
  firstSeenAt: Date;
  lastSeenAt: Date;
  /** True when the node was seen within the staleness limit given to `listNodes`. */
  alive: boolean;
  /** Pending queue entries under a lease of this node that has not expired. */
  leasedEntries: number;
}

export interface Store {
  /** Create or upgrade the schema. Safe to call from several processes at once. */
  migrate(): Promise<void>;
  close(): Promise<void>;

  // Domains, keys, aliases, credentials.
  addDomain(name: string, options?: { srsDomain?: string | null }): Promise<Domain>;
  getDomain(name: string): Promise<Domain | undefined>;
  listDomains(): Promise<Domain[]>;
  removeDomain(name: string): Promise<boolean>;
  /** Adds a key with its private key PEM; the record returned leaves the PEM out. */
  addDkimKey(key: NewDkimKey): Promise<DkimKeyRecord>;
  /** Keys of a domain by id, without their private keys. */
  listDkimKeys(domainId: number): Promise<DkimKeyRecord[]>;
  /**
   * The private key PEM of a key, or undefined when the key is not found or its row has no PEM
   * (created before the store kept it, so only the file at `privateKeyPath` has the key).
   */
  getDkimPrivateKey(id: number): Promise<string | undefined>;
  setDkimKeyStatus(id: number, status: DkimKeyRecord['status']): Promise<void>;
  addAlias(alias: Omit<Alias, 'id' | 'createdAt'>): Promise<Alias>;
  listAliases(domainId: number): Promise<Alias[]>;
  /** The alias for an exact local part of a domain, without catch-all or subaddress logic. */
  getAlias(domainId: number, localPart: string): Promise<Alias | undefined>;
  removeAlias(domainId: number, localPart: string): Promise<boolean>;
  addCredential(credential: Omit<Credential, 'id' | 'createdAt'>): Promise<Credential>;
  getCredential(username: string): Promise<Credential | undefined>;
  listCredentials(domainId: number): Promise<Credential[]>;
  removeCredential(username: string): Promise<boolean>;

  // The queue.
  /**
   * Store a message and its recipients. The promise resolves once the message is committed to
   * disk; calls that arrive together share one commit (group commit).
   */
  enqueue(message: NewMessage): Promise<{ messageId: string; entryIds: number[] }>;
  getMessageBody(messageId: string): Promise<Buffer | undefined>;
  /** Envelope facts of a message without its body (added for `herald queue show`). */
  getMessageInfo(messageId: string): Promise<MessageInfo | undefined>;
  /** Take up to `limit` due entries under a lease; expired leases count as due. */
  claimDue(options: ClaimOptions): Promise<QueueEntry[]>;
  renewLease(entryIds: number[], owner: string, leaseMs: number): Promise<void>;
  /** Apply an attempt's verdict: update the entry, release its lease, record an event. */
  completeAttempt(entryId: number, owner: string, outcome: AttemptOutcome): Promise<void>;
  getEntry(entryId: number): Promise<QueueEntry | undefined>;
  listEntries(filter?: QueueFilter): Promise<QueueEntry[]>;
  listEntriesOfMessage(messageId: string): Promise<QueueEntry[]>;
  /** Make entries due now (`herald queue retry`). Returns how many changed. */
  retryNow(selector: { messageId?: string; entryId?: number; all?: boolean }): Promise<number>;
  /** Delete entries (`herald queue delete`), and the message once no entry refers to it. */
  deleteEntries(selector: { messageId?: string; entryId?: number }): Promise<number>;
  listEvents(filter: {
    messageId?: string;
    entryId?: number;
    limit?: number;
  }): Promise<QueueEvent[]>;
  /** Time of the earliest due entry, so workers sleep until then; undefined when idle. */
  nextDueAt(): Promise<Date | undefined>;
  countByStatus(): Promise<Record<QueueStatus, number>>;
  /**
   * Delete messages created before `before` whose entries are all delivered or failed, with
   * their entries (events stay). Returns how many messages went. Added with the SQLite store
   * so that finished mail does not keep its body in the database for ever.
   */
  purgeFinished(before: Date): Promise<number>;
  /**
   * Free the leases of pending entries whose owner has stopped (`isGone(owner)` returns true),
   * so they are due at once instead of when the lease runs out. Returns how many entries were
   * freed. Only the SQLite store has it, because on its one machine a dead process is known by
   * its PID. On PostgreSQL a PID means nothing to the other machines, so leases expire instead.
   */
  releaseLeasesOf?(isGone: (owner: string) => boolean): Promise<number>;

  // SRS database mode.
  putSrsToken(record: SrsTokenRecord, maxRows: number): Promise<void>;
  getSrsToken(token: string, now: Date): Promise<string | undefined>;

  // Cluster coordination, added with the PostgreSQL backend. Optional: a single SQLite process
  // has no other node, so the in-process limits and its own state are the whole truth.
  /** Nodes seen claiming or renewing leases; a node is alive if seen within `staleAfterMs`. */
  listNodes?(options?: { now?: Date; staleAfterMs?: number }): Promise<NodeStatus[]>;
  /**
   * Take one of `limit` delivery slots to `domain` shared by every node, or return undefined
   * when all are taken. The returned function gives the slot back; a dead node's slots free
   * themselves.
   */
  tryAcquireDestinationSlot?(
    domain: string,
    limit: number,
  ): Promise<(() => Promise<void>) | undefined>;
  /**
   * Reserve the next message start to `domain` under a rate shared by every node, starts spaced
   * evenly; resolves to the milliseconds to wait before starting (0 to start now).
   */
  reserveDestinationStart?(domain: string, ratePerMinute: number): Promise<number>;
  /** Give back a reservation that was not used. */
  cancelDestinationStart?(domain: string, ratePerMinute: number): Promise<void>;
  /**
   * Call `listener` soon after any node enqueues or retries entries, so idle delivery workers
   * wake at once instead of at their next poll. Returns a function that stops the calls.
   */
  watchQueue?(listener: () => void): () => void;
}
