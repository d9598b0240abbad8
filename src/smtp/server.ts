/**
 * smtp-server with a configurable greeting delay. smtp-server 3.21 waits a fixed 100 ms before
 * its 220 greeting, to catch clients that send commands before it. Every connection pays that
 * delay, so a sender that opens one connection per message (Postfix's smtp-source does by
 * default) gets at most ten messages per second through each concurrent session. Herald greets
 * at once by default, as Postfix's smtpd does without postscreen. A client that still sends
 * before the greeting gets 421 from smtp-server.
 */
import type { Socket } from 'node:net';

import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { SMTPConnection, type SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';

import { REPLIES, replyText, type SmtpReplyError } from './replies.js';

export interface ConnectionHooks {
  /** Milliseconds between accepting a connection and sending the greeting; default 0. */
  greetingDelayMs?: number;
  /**
   * Runs before smtp-server handles each command line, AUTH continuation lines included but
   * not message data. A returned error is sent instead; a 421 also closes the connection.
   */
  onCommand?: (session: SMTPServerSession, command: string) => SmtpReplyError | undefined;
}

export class GreetingServer extends SMTPServer {
  constructor(
    options: SMTPServerOptions,
    private readonly hooks: ConnectionHooks = {},
  ) {
    super(options);
  }

  /**
   * Does what `SMTPServer#connect` and `SMTPConnection#init` of smtp-server 3.21 do, with the
   * delay as a setting, and puts the command hook in front of the connection's handler.
   * NOTE: this calls smtp-server methods that are public in its types but not documented, so
   * an upgrade of smtp-server must be checked against this method.
   */
  override connect(socket: Socket, socketOptions?: SMTPConnectionOptions | null): void {
    const connection = new SMTPConnection(this, socket, socketOptions);
    this.connections.add(connection);
    connection.on('error', (error: Error) => this._onError(error));
    connection.on('connect', (data: Parameters<SMTPServer['_onClientConnect']>[0]) =>
      this._onClientConnect(data),
    );
    this.hookCommands(connection);
    connection._setListeners(() => {
      const { maxClients } = this.options;
      if (maxClients && this.connections.size > maxClients) {
        connection.send(
          REPLIES.tooManyClients.code,
          `${connection.name} ${replyText(REPLIES.tooManyClients)}`,
          false,
        );
        return;
      }
      const timer = setTimeout(() => connection.connectionReady(), this.hooks.greetingDelayMs ?? 0);
      timer.unref();
    });
  }

  private hookCommands(connection: SMTPConnection): void {
    const onCommand = this.hooks.onCommand;
    if (!onCommand) return;
    const handle = connection._onCommand.bind(connection);
    connection._onCommand = (command, callback) => {
      // While TLS starts, smtp-server drops buffered lines without a reply, because writing
      // to the socket then would break the handshake.
      if (!connection._upgrading) {
        const rejection = onCommand(connection.session, command.toString('utf8'));
        if (rejection) {
          connection.send(rejection.responseCode, rejection.message);
          callback?.();
          return;
        }
      }
      handle(command, callback);
    };
  }
}
