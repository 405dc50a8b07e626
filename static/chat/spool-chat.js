/**
 * Spool chat client for the browser: the ACS Chat API and Spool's realtime socket, with the
 * method names and model shapes of `@azure/communication-chat` (ChatClient, ChatThreadClient).
 *
 * No dependencies and no build step: load it with a `<script>` tag and use `window.SpoolChat`.
 * docs/chat-client.md explains its use; docs/chat.md the API and the socket protocol.
 *
 * @example
 * const chat = new SpoolChat.ChatClient("/r/demo/", { token, refresh: fetchNewToken });
 * await chat.startRealtimeNotifications();
 * chat.on("chatMessageReceived", (event) => console.log(event.senderDisplayName, event.message));
 * const { chatThread } = await chat.createChatThread({ topic: "Launch" });
 * await chat.getChatThreadClient(chatThread.id).sendMessage({ content: "Hello" });
 */
(function (root) {
  "use strict";

  const API_VERSION = "2024-03-07";
  /** How long before a token's expiry it is renewed (at most half its lifetime). */
  const REFRESH_BEFORE_EXPIRY_MS = 5 * 60 * 1000;
  /** A token this close to expiry is renewed before it is used. */
  const EXPIRY_SKEW_MS = 10 * 1000;
  const PING_INTERVAL_MS = 25 * 1000;
  /** A socket that has not said hello after this long is given up and reopened. */
  const CONNECT_TIMEOUT_MS = 15 * 1000;
  const BACKOFF_INITIAL_MS = 500;
  const BACKOFF_MAX_MS = 30 * 1000;
  /** How long a gap in a thread's sequence may stay open (frames of one thread can arrive
   * out of order from two web processes) before the missing frames are asked for. */
  const GAP_GRACE_MS = 1000;
  /** The ACS SDK sends a typing notification at most once per 8 seconds. */
  const TYPING_INTERVAL_MS = 8 * 1000;
  const CLOSE_UNAUTHORIZED = 4001;

  const REALTIME_EVENTS = [
    "chatMessageReceived",
    "chatMessageEdited",
    "chatMessageDeleted",
    "typingIndicatorReceived",
    "readReceiptReceived",
    "chatThreadCreated",
    "chatThreadPropertiesUpdated",
    "chatThreadDeleted",
    "participantsAdded",
    "participantsRemoved",
  ];
  /** The ACS SDK spells these with a capital T; both names reach the same listeners. */
  const EVENT_ALIASES = {
    realTimeNotificationConnected: "realtimeNotificationConnected",
    realTimeNotificationDisconnected: "realtimeNotificationDisconnected",
  };
  /** Fields of REST bodies and event payloads that hold dates (RFC 3339 strings on the wire). */
  const DATE_FIELDS = new Set([
    "createdOn",
    "editedOn",
    "deletedOn",
    "receivedOn",
    "readOn",
    "updatedOn",
    "addedOn",
    "removedOn",
    "shareHistoryTime",
    "lastMessageReceivedOn",
  ]);

  // --- Errors --------------------------------------------------------------------------------

  /**
   * A failed API call, like `RestError` of the Azure SDKs.
   * @property {number} statusCode  HTTP status (0 when the request never got an answer).
   * @property {string} code        The ACS error code, e.g. "NotFound", "Forbidden".
   * @property {string|undefined} target  The field the error is about, when the server names one.
   * @property {object|undefined} details The error object of the body, as sent.
   */
  class RestError extends Error {
    constructor(message, { statusCode = 0, code = "", target, details } = {}) {
      super(message);
      this.name = "RestError";
      this.statusCode = statusCode;
      this.code = code;
      this.target = target;
      this.details = details;
    }

    static async fromResponse(response) {
      let error = {};
      try {
        error = (await response.json()).error || {};
      } catch {
        // not JSON: keep the status alone
      }
      return new RestError(error.message || `${response.status} ${response.statusText}`, {
        statusCode: response.status,
        code: error.code || String(response.status),
        target: error.target,
        details: error,
      });
    }
  }

  // --- Identifiers and shapes ------------------------------------------------------------------

  /**
   * A REST `CommunicationIdentifierModel` as the SDK's `CommunicationIdentifierKind`:
   * `{kind: "communicationUser", communicationUserId}`, `{kind: "phoneNumber", phoneNumber,
   * rawId}`, `{kind: "microsoftTeamsUser", ...}`, `{kind: "microsoftTeamsApp", ...}` or
   * `{kind: "unknown", id}`.
   * @param {object} model
   * @returns {object}
   */
  function deserializeIdentifier(model) {
    if (!model) return undefined;
    const rawId = model.rawId;
    if (model.communicationUser) {
      return { kind: "communicationUser", communicationUserId: model.communicationUser.id };
    }
    if (model.phoneNumber) {
      return { kind: "phoneNumber", phoneNumber: model.phoneNumber.value, rawId };
    }
    if (model.microsoftTeamsUser) {
      const user = model.microsoftTeamsUser;
      return {
        kind: "microsoftTeamsUser",
        microsoftTeamsUserId: user.userId,
        isAnonymous: user.isAnonymous,
        cloud: user.cloud,
        rawId,
      };
    }
    if (model.microsoftTeamsApp) {
      const app = model.microsoftTeamsApp;
      return { kind: "microsoftTeamsApp", teamsAppId: app.appId, cloud: app.cloud, rawId };
    }
    return { kind: "unknown", id: rawId };
  }

  /**
   * The raw id of an identifier: a string is taken as a raw id already; an identifier with or
   * without `kind` (`{communicationUserId}`, `{phoneNumber}`, `{id}`) gives its id.
   * @param {string|object} identifier
   * @returns {string}
   */
  function getIdentifierRawId(identifier) {
    if (typeof identifier === "string") return identifier;
    if (!identifier || typeof identifier !== "object") {
      throw new TypeError("An identifier is a raw id string or a CommunicationIdentifier.");
    }
    if (identifier.communicationUserId) return identifier.communicationUserId;
    if (identifier.rawId) return identifier.rawId;
    if (identifier.phoneNumber) return `4:${identifier.phoneNumber}`;
    if (identifier.id) return identifier.id;
    throw new TypeError("This identifier has no id.");
  }

  /**
   * An identifier (or raw id) as the REST `CommunicationIdentifierModel`.
   * @param {string|object} identifier
   * @returns {object}
   */
  function serializeIdentifier(identifier) {
    const rawId = getIdentifierRawId(identifier);
    if (rawId.startsWith("8:acs:") || rawId.startsWith("8:spool:")) {
      return { rawId, communicationUser: { id: rawId } };
    }
    if (rawId.startsWith("4:")) {
      return { rawId, phoneNumber: { value: rawId.slice(2) } };
    }
    return { rawId };
  }

  /** Every date field of a (nested) REST body or event payload as a Date. */
  function withDates(value) {
    if (Array.isArray(value)) return value.map(withDates);
    if (!value || typeof value !== "object" || value instanceof Date) return value;
    const out = {};
    for (const [key, field] of Object.entries(value)) {
      out[key] = DATE_FIELDS.has(key) && typeof field === "string" ? new Date(field) : withDates(field);
    }
    return out;
  }

  function toParticipant(model) {
    const participant = { id: deserializeIdentifier(model.communicationIdentifier) };
    if (model.displayName !== undefined) participant.displayName = model.displayName;
    if (model.shareHistoryTime) participant.shareHistoryTime = new Date(model.shareHistoryTime);
    if (model.metadata) participant.metadata = model.metadata;
    return participant;
  }

  function fromParticipant(participant) {
    const model = { communicationIdentifier: serializeIdentifier(participant.id) };
    if (participant.displayName !== undefined) model.displayName = participant.displayName;
    if (participant.shareHistoryTime) {
      model.shareHistoryTime = new Date(participant.shareHistoryTime).toISOString();
    }
    if (participant.metadata) model.metadata = participant.metadata;
    return model;
  }

  function toThreadProperties(model) {
    const { createdByCommunicationIdentifier, ...rest } = model;
    const thread = withDates(rest);
    if (createdByCommunicationIdentifier) {
      thread.createdBy = deserializeIdentifier(createdByCommunicationIdentifier);
    }
    return thread;
  }

  function toMessage(model) {
    const { content, senderCommunicationIdentifier, ...rest } = model;
    const message = withDates(rest);
    if (senderCommunicationIdentifier) {
      message.sender = deserializeIdentifier(senderCommunicationIdentifier);
    }
    if (content) {
      const { participants, initiatorCommunicationIdentifier, ...other } = content;
      message.content = { ...other };
      if (initiatorCommunicationIdentifier) {
        message.content.initiator = deserializeIdentifier(initiatorCommunicationIdentifier);
      }
      if (participants) message.content.participants = participants.map(toParticipant);
    }
    return message;
  }

  function toReadReceipt(model) {
    return {
      sender: deserializeIdentifier(model.senderCommunicationIdentifier),
      chatMessageId: model.chatMessageId,
      readOn: new Date(model.readOn),
    };
  }

  function newRequestId() {
    if (root.crypto && typeof root.crypto.randomUUID === "function") return root.crypto.randomUUID();
    const hex = () => Math.floor(Math.random() * 0x10000).toString(16).padStart(4, "0");
    return `${hex()}${hex()}-${hex()}-4${hex().slice(1)}-a${hex().slice(1)}-${hex()}${hex()}${hex()}`;
  }

  function isoTime(value) {
    return value instanceof Date ? value.toISOString() : new Date(value).toISOString();
  }

  // --- Tokens ----------------------------------------------------------------------------------

  /**
   * The expiry of a JWT in epoch milliseconds, from its payload's `exp` (undefined when the
   * token is not a JWT or carries no expiry).
   * @param {string} token
   * @returns {number|undefined}
   */
  function tokenExpiresAt(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const padded = part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=");
      const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
      const exp = JSON.parse(new TextDecoder().decode(bytes)).exp;
      return typeof exp === "number" ? exp * 1000 : undefined;
    } catch {
      return undefined;
    }
  }

  /** Holds the current token; renews it through the credential's refresh callback. */
  class TokenKeeper {
    constructor(credential, onRefreshed) {
      if (typeof credential === "string") {
        this._token = credential;
      } else if (credential && typeof credential.token === "string") {
        this._token = credential.token;
        this._refresh = typeof credential.refresh === "function" ? credential.refresh : null;
      } else if (credential && typeof credential.getToken === "function") {
        // An ACS CommunicationTokenCredential: getToken() -> {token, expiresOnTimestamp}.
        this._token = "";
        this._refresh = async () => (await credential.getToken()).token;
      } else {
        throw new TypeError("credential must be a token string or {token, refresh?}.");
      }
      this._refresh = this._refresh || null;
      this._onRefreshed = onRefreshed;
      this._inFlight = null;
      this._timer = null;
      this._scheduled = false;
    }

    get canRefresh() {
      return this._refresh !== null;
    }

    get token() {
      return this._token;
    }

    /** The token to use now: renewed first when it is missing or about to expire. */
    async getToken() {
      const expiresAt = tokenExpiresAt(this._token);
      const stale = !this._token || (expiresAt !== undefined && expiresAt - Date.now() < EXPIRY_SKEW_MS);
      if (stale && this.canRefresh) return this.refresh(this._token);
      return this._token;
    }

    /**
     * Renew the token. Concurrent callers share one call of the refresh callback; a caller
     * whose `stale` token was already replaced gets the new one without another call.
     */
    async refresh(stale) {
      if (!this.canRefresh) {
        throw new RestError("The token cannot be renewed: no refresh callback.", {
          code: "InvalidToken",
          statusCode: 401,
        });
      }
      if (stale !== undefined && stale !== this._token && this._token) return this._token;
      if (!this._inFlight) {
        this._inFlight = (async () => {
          try {
            const token = await this._refresh();
            if (typeof token !== "string" || !token) {
              throw new TypeError("The refresh callback must resolve to a token string.");
            }
            this._token = token;
            this._schedule();
            this._onRefreshed(token);
            return token;
          } finally {
            this._inFlight = null;
          }
        })();
      }
      return this._inFlight;
    }

    /** Renew the token shortly before it expires, for as long as `startSchedule` holds. */
    startSchedule() {
      this._scheduled = true;
      this._schedule();
    }

    stopSchedule() {
      this._scheduled = false;
      clearTimeout(this._timer);
      this._timer = null;
    }

    _schedule() {
      clearTimeout(this._timer);
      this._timer = null;
      const expiresAt = tokenExpiresAt(this._token);
      if (!this._scheduled || !this.canRefresh || expiresAt === undefined) return;
      const lifetime = expiresAt - Date.now();
      const delay = Math.max(0, lifetime - Math.min(REFRESH_BEFORE_EXPIRY_MS, lifetime / 2));
      this._timer = setTimeout(() => {
        this.refresh(this._token).catch(() => {
          // Retried by whoever needs the token next (a request, the socket's 4001).
        });
      }, Math.min(delay, 0x7fffffff));
    }
  }

  // --- Events ----------------------------------------------------------------------------------

  class Emitter {
    constructor() {
      this._listeners = new Map();
    }

    on(event, listener) {
      if (typeof listener !== "function") throw new TypeError("listener must be a function.");
      const name = EVENT_ALIASES[event] || event;
      if (!this._listeners.has(name)) this._listeners.set(name, new Set());
      this._listeners.get(name).add(listener);
    }

    off(event, listener) {
      const listeners = this._listeners.get(EVENT_ALIASES[event] || event);
      if (listeners) listeners.delete(listener);
    }

    emit(event, payload) {
      if (event === "error" && !(this._listeners.get(event) || new Set()).size) {
        console.error("SpoolChat:", payload);
        return;
      }
      for (const listener of [...(this._listeners.get(event) || [])]) {
        try {
          listener(payload);
        } catch (error) {
          // A failing listener must not stop the others or the socket: report it apart.
          setTimeout(() => {
            throw error;
          });
        }
      }
    }
  }

  // --- HTTP ------------------------------------------------------------------------------------

  class Pipeline {
    constructor(endpoint, tokens) {
      this.endpoint = endpoint;
      this.tokens = tokens;
    }

    url(path, query = {}) {
      const url = new URL(path, this.endpoint);
      url.searchParams.set("api-version", API_VERSION);
      for (const [key, value] of Object.entries(query)) {
        if (value !== undefined && value !== null) url.searchParams.set(key, String(value));
      }
      return url.toString();
    }

    /**
     * One API call with the current token; a 401 renews the token (when the credential can)
     * and retries once. Answers the parsed JSON body, or undefined when there is none.
     */
    async send(method, url, { body, contentType = "application/json", headers = {} } = {}) {
      for (let attempt = 0; ; attempt++) {
        const token = await this.tokens.getToken();
        const init = {
          method,
          credentials: "omit",
          headers: { Accept: "application/json", Authorization: `Bearer ${token}`, ...headers },
        };
        if (body !== undefined) {
          init.headers["Content-Type"] = contentType;
          init.body = JSON.stringify(body);
        }
        let response;
        try {
          response = await fetch(url, init);
        } catch (error) {
          throw new RestError(`The request could not be sent: ${error.message}`, { code: "RequestFailed" });
        }
        if (response.status === 401 && attempt === 0 && this.tokens.canRefresh) {
          await this.tokens.refresh(token);
          continue;
        }
        if (!response.ok) throw await RestError.fromResponse(response);
        const text = await response.text();
        return text ? JSON.parse(text) : undefined;
      }
    }

    /** A PagedAsyncIterableIterator over a list whose pages link on with `nextLink`. */
    list(url, convert) {
      const pipeline = this;
      async function* pages(settings = {}) {
        let next = settings.continuationToken || url;
        if (settings.maxPageSize && !settings.continuationToken) {
          const first = new URL(next);
          first.searchParams.set("maxPageSize", String(settings.maxPageSize));
          next = first.toString();
        }
        while (next) {
          const page = await pipeline.send("GET", next);
          const items = (page.value || []).map(convert);
          // The SDK's pages carry their continuation token the same way.
          items.continuationToken = page.nextLink || undefined;
          yield items;
          next = page.nextLink || null;
        }
      }
      async function* items() {
        for await (const page of pages()) yield* page;
      }
      const iterator = items();
      return {
        next: () => iterator.next(),
        [Symbol.asyncIterator]() {
          return this;
        },
        byPage: (settings) => pages(settings),
      };
    }
  }

  // --- Realtime --------------------------------------------------------------------------------

  /** Where a thread's frames stand: every sequence up to `mark` was seen; `above` holds those
   * seen past a gap. */
  class ThreadCursor {
    constructor(sequence) {
      this.mark = sequence;
      this.above = new Set();
    }

    /** Record a sequence; false if it was seen before (a duplicate to drop). */
    accept(sequence) {
      if (sequence <= this.mark || this.above.has(sequence)) return false;
      this.above.add(sequence);
      this._advance();
      return true;
    }

    get hasGap() {
      return this.above.size > 0;
    }

    get highest() {
      return Math.max(this.mark, ...this.above);
    }

    /** The server has replayed everything up to `sequence` that this identity may see:
     * whatever is still missing below it is not for us (e.g. while we were not a participant). */
    settle(sequence) {
      if (sequence > this.mark) this.mark = sequence;
      for (const seen of this.above) if (seen <= this.mark) this.above.delete(seen);
      this._advance();
    }

    _advance() {
      while (this.above.delete(this.mark + 1)) this.mark += 1;
    }
  }

  function backoffDelay(attempt) {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** attempt);
    return ceiling / 2 + Math.random() * (ceiling / 2); // "equal jitter"
  }

  function laterTime(a, b) {
    if (!a) return b;
    if (!b) return a;
    return Date.parse(b) > Date.parse(a) ? b : a;
  }

  /**
   * The identity socket: connects, keeps alive, reconnects, resumes and drops duplicates.
   * States: `_socket` is the socket in use (or being opened); `_replacement` is a socket opened
   * with a renewed token that takes over once it has said hello.
   */
  class Realtime {
    constructor(url, tokens, emitter, options) {
      this._url = url;
      this._tokens = tokens;
      this._emitter = emitter;
      this._WebSocket = options.webSocket || null;
      this._started = false;
      this._socket = null;
      this._replacement = null;
      this._connected = false;
      this._everConnected = false;
      this._attempt = 0;
      this._reconnectTimer = null;
      this._pingTimer = null;
      this._awaitingPong = false;
      this._cursors = new Map();
      this._gapTimers = new Map();
      this._lastServerTime = null;
      this._resumes = [];
      this.identity = null;
      this._onOnline = () => {
        if (this._started && !this._socket && this._reconnectTimer) {
          clearTimeout(this._reconnectTimer);
          this._reconnectTimer = null;
          this._open();
        }
      };
    }

    get connected() {
      return this._connected;
    }

    get socket() {
      return this._socket;
    }

    start() {
      if (this._started) return;
      this._started = true;
      this._tokens.startSchedule();
      if (root.addEventListener) root.addEventListener("online", this._onOnline);
      this._open();
    }

    stop() {
      if (!this._started) return;
      this._started = false;
      this._tokens.stopSchedule();
      if (root.removeEventListener) root.removeEventListener("online", this._onOnline);
      clearTimeout(this._reconnectTimer);
      this._reconnectTimer = null;
      for (const timer of this._gapTimers.values()) clearTimeout(timer);
      this._gapTimers.clear();
      for (const socket of [this._replacement, this._socket]) if (socket) this._discard(socket);
      this._replacement = null;
      this._socket = null;
      this._stopPing();
      this._setDisconnected({ code: 1000, reason: "stopped" });
    }

    /** The token was renewed: move to a socket that carries it before the old one expires. */
    tokenRenewed() {
      if (this._started && this._connected && !this._replacement) this._open({ replace: true });
    }

    async _open({ replace = false } = {}) {
      let token;
      try {
        token = await this._tokens.getToken();
      } catch (error) {
        if (!replace) this._scheduleReconnect({ refresh: true });
        return;
      }
      if (!this._started || (!replace && this._socket) || (replace && this._replacement)) return;
      const WebSocketImpl = this._WebSocket || root.WebSocket;
      let socket;
      try {
        socket = new WebSocketImpl(`${this._url}?access_token=${encodeURIComponent(token)}`);
      } catch (error) {
        if (!replace) this._scheduleReconnect();
        return;
      }
      socket._spoolToken = token;
      socket._spoolHelloTimer = setTimeout(() => this._drop(socket, "no hello"), CONNECT_TIMEOUT_MS);
      socket.onmessage = (event) => this._onMessage(socket, event);
      socket.onclose = (event) => this._onClose(socket, event.code, event.reason);
      socket.onerror = () => {}; // a close follows
      if (replace) this._replacement = socket;
      else this._socket = socket;
    }

    _send(frame) {
      if (this._socket && this._socket.readyState === 1) {
        this._socket.send(JSON.stringify(frame));
        return true;
      }
      return false;
    }

    _onMessage(socket, event) {
      if (socket !== this._socket && socket !== this._replacement) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (socket === this._socket) this._awaitingPong = false;
      switch (frame.type) {
        case "hello":
          this._onHello(socket, frame);
          break;
        case "chat":
          if (socket === this._socket) this._onChat(frame);
          break;
        case "chat.resumed":
          if (socket === this._socket) this._onResumed(frame);
          break;
        case "error":
          this._onError(socket, frame);
          break;
        default:
          break; // pong, and frames of other features (calling)
      }
    }

    _onError(socket, frame) {
      if (frame.code === "InvalidToken") {
        socket._spoolError = frame; // the close (4001) that follows acts on it
        return;
      }
      // Otherwise the answer to a resume the server refused (e.g. a token without a chat scope).
      if (socket === this._socket) this._resumes.shift();
      this._emitter.emit("error", new RestError(frame.message || frame.code, { code: frame.code }));
    }

    _onHello(socket, frame) {
      clearTimeout(socket._spoolHelloTimer);
      this.identity = frame.identity;
      if (socket === this._replacement) {
        // The renewed token's socket takes over; the old one stops without a gap between them
        // (the new one already receives), and a resume covers any doubt.
        const old = this._socket;
        this._socket = socket;
        this._replacement = null;
        if (old) this._discard(old);
        if (this._connected) {
          this._resumes = [];
          this._awaitingPong = false;
          this._resume(frame.serverTime);
          return;
        }
        // The old socket closed first: this one is a reconnection.
        clearTimeout(this._reconnectTimer);
        this._reconnectTimer = null;
      }
      this._attempt = 0;
      this._resumes = [];
      this._startPing();
      if (this._everConnected) {
        this._resume(frame.serverTime);
      } else {
        this._lastServerTime = frame.serverTime;
      }
      this._everConnected = true;
      if (!this._connected) {
        this._connected = true;
        this._emitter.emit("realtimeNotificationConnected", { identity: frame.identity });
      }
    }

    /** Ask for everything missed since the last frame seen: per known thread by sequence, and
     * for threads not known yet by time. `serverTime` (the new hello's) becomes the last time
     * seen once the server has answered. */
    _resume(serverTime) {
      const threads = {};
      const settles = {};
      for (const [threadId, cursor] of this._cursors) {
        threads[threadId] = cursor.mark;
        settles[threadId] = cursor.highest;
      }
      const frame = { type: "chat.resume", threads };
      if (this._lastServerTime) frame.since = this._lastServerTime;
      if (this._send(frame)) this._resumes.push({ settles, serverTime });
    }

    _resumeGap(threadId) {
      const cursor = this._cursors.get(threadId);
      if (!cursor || !cursor.hasGap || !this._connected) return;
      const sent = this._send({ type: "chat.resume", threads: { [threadId]: cursor.mark } });
      if (sent) this._resumes.push({ settles: { [threadId]: cursor.highest }, serverTime: null });
    }

    _onResumed(frame) {
      const resume = this._resumes.shift();
      if (!resume) return;
      for (const [threadId, sequence] of Object.entries(resume.settles)) {
        const cursor = this._cursors.get(threadId);
        if (cursor) cursor.settle(sequence);
      }
      if (resume.serverTime) this._lastServerTime = laterTime(this._lastServerTime, resume.serverTime);
      this._emitter.emit("realtimeNotificationResumed", { count: frame.count, complete: frame.complete });
      if (!frame.complete) this._emitter.emit("resyncRequired", { count: frame.count });
    }

    _onChat(frame) {
      const { threadId, sequence } = frame;
      if (typeof sequence === "number") {
        const cursor = this._cursors.get(threadId);
        if (!cursor) {
          this._cursors.set(threadId, new ThreadCursor(sequence));
        } else if (!cursor.accept(sequence)) {
          return; // seen before (a replay, or a resume overlapping live frames)
        } else if (cursor.hasGap && !this._gapTimers.has(threadId)) {
          this._gapTimers.set(
            threadId,
            setTimeout(() => {
              this._gapTimers.delete(threadId);
              this._resumeGap(threadId);
            }, GAP_GRACE_MS)
          );
        }
        // While a reconnect's resume is under way the time of live frames must not move
        // `since` past frames still to be replayed.
        if (!this._resumes.some((resume) => resume.serverTime)) {
          this._lastServerTime = laterTime(this._lastServerTime, frame.time);
        }
      }
      if (REALTIME_EVENTS.includes(frame.event)) this._emitter.emit(frame.event, withDates(frame.data));
    }

    _onClose(socket, code, reason) {
      clearTimeout(socket._spoolHelloTimer);
      if (socket === this._replacement) {
        this._replacement = null; // the old socket carries on; its own close reconnects
        return;
      }
      if (socket !== this._socket) return;
      this._socket = null;
      this._resumes = [];
      this._stopPing();
      this._setDisconnected({ code, reason });
      if (!this._started) return;
      if (code === CLOSE_UNAUTHORIZED) {
        if (!this._tokens.canRefresh) {
          this._started = false;
          this._tokens.stopSchedule();
          const message = (socket._spoolError && socket._spoolError.message) || "The token was refused.";
          this._emitter.emit("error", new RestError(message, { statusCode: 401, code: "InvalidToken" }));
          return;
        }
        this._scheduleReconnect({ refresh: true, refused: socket._spoolToken });
      } else {
        this._scheduleReconnect();
      }
    }

    _setDisconnected(detail) {
      if (!this._connected) return;
      this._connected = false;
      this._emitter.emit("realtimeNotificationDisconnected", detail);
    }

    /** Reopen after a backoff (the first retry after a refused token is immediate, with a
     * renewed token unless the `refused` one was already replaced). */
    _scheduleReconnect({ refresh = false, refused } = {}) {
      if (!this._started || this._reconnectTimer) return;
      const delay = refresh && this._attempt === 0 ? 0 : backoffDelay(this._attempt);
      this._attempt += 1;
      this._reconnectTimer = setTimeout(async () => {
        this._reconnectTimer = null;
        if (!this._started) return;
        if (refresh) {
          try {
            await this._tokens.refresh(refused === undefined ? this._tokens.token : refused);
          } catch (error) {
            this._emitter.emit("error", error);
            this._scheduleReconnect({ refresh: true, refused });
            return;
          }
        }
        this._open();
      }, delay);
    }

    /** Give a socket up at once (a dead connection may take long to report its close). */
    _drop(socket, reason) {
      this._discard(socket);
      this._onClose(socket, 1006, reason);
    }

    _discard(socket) {
      clearTimeout(socket._spoolHelloTimer);
      socket.onmessage = socket.onclose = socket.onerror = null;
      try {
        socket.close(1000);
      } catch {
        // already closed
      }
    }

    _startPing() {
      this._stopPing();
      this._awaitingPong = false;
      this._pingTimer = setInterval(() => {
        const socket = this._socket;
        if (!socket) return;
        if (this._awaitingPong) {
          this._drop(socket, "keepalive timeout"); // nothing came back since the last ping
          return;
        }
        this._awaitingPong = this._send({ type: "ping" });
      }, PING_INTERVAL_MS);
    }

    _stopPing() {
      clearInterval(this._pingTimer);
      this._pingTimer = null;
    }
  }

  // --- Clients ---------------------------------------------------------------------------------

  function resolveEndpoint(endpoint) {
    const base = root.location ? root.location.href : undefined;
    const url = new URL(endpoint, base);
    if (!url.pathname.endsWith("/")) url.pathname += "/";
    url.search = "";
    url.hash = "";
    return url.toString();
  }

  /**
   * The client of one user (a user access token) of a Spool resource: threads, and realtime
   * notifications of everything that happens in them.
   */
  class ChatClient {
    /**
     * @param {string} endpoint  The resource's endpoint, e.g. `https://spool.example:8443/r/demo/`,
     *   or a path on this page's origin, e.g. `/r/demo/`.
     * @param {string | {token: string, refresh?: () => Promise<string>}} credential  A user access
     *   token with a chat scope, or the token with a callback that resolves to a new one. With
     *   `refresh`, the client renews the token shortly before it expires and whenever the server
     *   refuses it (HTTP 401, socket close 4001), then retries once or reconnects. An ACS
     *   `CommunicationTokenCredential` (an object with `getToken()`) works too.
     * @param {{realtimeUrl?: string, webSocket?: typeof WebSocket}} [options]
     *   `realtimeUrl`: the socket's URL when it is not `/ws/` on the endpoint's host;
     *   `webSocket`: a WebSocket constructor to use instead of the global one.
     */
    constructor(endpoint, credential, options = {}) {
      this.endpoint = resolveEndpoint(endpoint);
      this._emitter = new Emitter();
      this._tokens = new TokenKeeper(credential, (token) => {
        const expiresAt = tokenExpiresAt(token);
        this._emitter.emit("tokenRefreshed", { expiresOn: expiresAt ? new Date(expiresAt) : undefined });
        this._realtime.tokenRenewed();
      });
      this._pipeline = new Pipeline(this.endpoint, this._tokens);
      const origin = new URL(this.endpoint);
      const realtimeUrl =
        options.realtimeUrl || `${origin.protocol === "https:" ? "wss:" : "ws:"}//${origin.host}/ws/`;
      this._realtime = new Realtime(realtimeUrl, this._tokens, this._emitter, options);
    }

    /**
     * A client for one thread (no request is made).
     * @param {string} threadId
     * @returns {ChatThreadClient}
     */
    getChatThreadClient(threadId) {
      return new ChatThreadClient(this._pipeline, threadId);
    }

    /**
     * Create a thread. The caller always takes part; add it to `participants` to give itself a
     * display name.
     * @param {{topic: string}} request
     * @param {{participants?: Array<{id: object|string, displayName?: string, shareHistoryTime?: Date}>,
     *   idempotencyToken?: string}} [options]  A repeated `idempotencyToken` answers with the
     *   thread created the first time.
     * @returns {Promise<{chatThread: object, invalidParticipants?: Array<object>}>}
     *   `chatThread` is `{id, topic, createdOn: Date, createdBy}`; participants that could not
     *   be added come back in `invalidParticipants` (the thread is created without them).
     */
    async createChatThread(request, options = {}) {
      const body = { topic: request.topic };
      if (options.participants) body.participants = options.participants.map(fromParticipant);
      const result = await this._pipeline.send("POST", this._pipeline.url("chat/threads"), {
        body,
        headers: { "repeatability-request-id": options.idempotencyToken || newRequestId() },
      });
      const created = { chatThread: toThreadProperties(result.chatThread) };
      if (result.invalidParticipants) created.invalidParticipants = result.invalidParticipants;
      return created;
    }

    /**
     * The caller's threads, most recently active first: `{id, topic, deletedOn?: Date,
     * lastMessageReceivedOn?: Date}`. Iterate with `for await`; `byPage()` gives pages.
     * @param {{maxPageSize?: number, startTime?: Date}} [options]
     */
    listChatThreads(options = {}) {
      const url = this._pipeline.url("chat/threads", {
        maxPageSize: options.maxPageSize,
        startTime: options.startTime ? isoTime(options.startTime) : undefined,
      });
      return this._pipeline.list(url, withDates);
    }

    /**
     * Delete a thread (participants get `chatThreadDeleted`). Needs the `chat` scope.
     * @param {string} threadId
     * @returns {Promise<void>}
     */
    async deleteChatThread(threadId) {
      await this._pipeline.send("DELETE", this._pipeline.url(`chat/threads/${encodeURIComponent(threadId)}`));
    }

    /**
     * Open the realtime socket; keep it open (reconnecting with backoff and resuming what was
     * missed) until `stopRealtimeNotifications`. Resolves at once; `realtimeNotificationConnected`
     * tells when the socket is up.
     * @returns {Promise<void>}
     */
    async startRealtimeNotifications() {
      this._realtime.start();
    }

    /**
     * Close the realtime socket and stop reconnecting. Listeners stay registered (the ACS SDK
     * removes them; here a later `startRealtimeNotifications` reaches them again).
     * @returns {Promise<void>}
     */
    async stopRealtimeNotifications() {
      this._realtime.stop();
    }

    /**
     * Listen to an event. Chat events, with the ACS SDK's payloads (dates as Date):
     * `chatMessageReceived`, `chatMessageEdited`, `chatMessageDeleted`, `typingIndicatorReceived`,
     * `readReceiptReceived`, `chatThreadCreated`, `chatThreadPropertiesUpdated`,
     * `chatThreadDeleted`, `participantsAdded`, `participantsRemoved`.
     * Connection events: `realtimeNotificationConnected` ({identity}),
     * `realtimeNotificationDisconnected` ({code, reason}), `realtimeNotificationResumed`
     * ({count, complete}: missed events were replayed after a reconnect), `resyncRequired`
     * (more was missed than the server replays: re-read threads and messages through the API),
     * `tokenRefreshed` ({expiresOn}), `error` (a RestError: the token was refused and cannot be
     * renewed, or renewing failed).
     * The ACS spellings `realTimeNotificationConnected` / `realTimeNotificationDisconnected`
     * are accepted too.
     * @param {string} event
     * @param {(payload: any) => void} listener
     */
    on(event, listener) {
      this._emitter.on(event, listener);
    }

    /**
     * Stop listening.
     * @param {string} event
     * @param {(payload: any) => void} listener
     */
    off(event, listener) {
      this._emitter.off(event, listener);
    }

    /** Whether the realtime socket is connected now. */
    get realtimeConnected() {
      return this._realtime.connected;
    }

    /** The raw id of the token's identity, once the socket has said hello. */
    get identity() {
      return this._realtime.identity;
    }

    /** The underlying WebSocket, for diagnostics and tests (closing it makes the client
     * reconnect and resume, as after a network failure). */
    get realtimeSocket() {
      return this._realtime.socket;
    }
  }

  /** Operations on one thread, for the identity of the ChatClient that made this client. */
  class ChatThreadClient {
    constructor(pipeline, threadId) {
      /** The thread's id. */
      this.threadId = threadId;
      this._pipeline = pipeline;
      this._lastTyping = 0;
    }

    _url(path = "", query) {
      return this._pipeline.url(`chat/threads/${encodeURIComponent(this.threadId)}${path}`, query);
    }

    /**
     * The thread's properties: `{id, topic, createdOn: Date, createdBy, deletedOn?: Date}`.
     * @returns {Promise<object>}
     */
    async getProperties() {
      return toThreadProperties(await this._pipeline.send("GET", this._url()));
    }

    /**
     * Change the topic (participants get `chatThreadPropertiesUpdated`). Needs the `chat` scope.
     * @param {string} topic
     * @returns {Promise<void>}
     */
    async updateTopic(topic) {
      await this.updateProperties({ topic });
    }

    /**
     * Change the thread's properties (Spool keeps the topic).
     * @param {{topic?: string}} options
     * @returns {Promise<void>}
     */
    async updateProperties(options = {}) {
      const body = {};
      if (options.topic !== undefined) body.topic = options.topic;
      await this._pipeline.send("PATCH", this._url(), { body, contentType: "application/merge-patch+json" });
    }

    /**
     * Send a message.
     * @param {{content: string}} request
     * @param {{senderDisplayName?: string, type?: "text"|"html",
     *   metadata?: Record<string, string>}} [options]
     * @returns {Promise<{id: string}>} the new message's id
     */
    async sendMessage(request, options = {}) {
      const body = { content: request.content };
      if (options.senderDisplayName !== undefined) body.senderDisplayName = options.senderDisplayName;
      if (options.type !== undefined) body.type = options.type;
      if (options.metadata !== undefined) body.metadata = options.metadata;
      const result = await this._pipeline.send("POST", this._url("/messages"), { body });
      return { id: result.id };
    }

    /**
     * One message: `{id, type, sequenceId, version, content?: {message} | {topic, initiator} |
     * {participants, initiator}, senderDisplayName?, createdOn: Date, sender?, editedOn?: Date,
     * deletedOn?: Date, metadata?}`.
     * @param {string} messageId
     * @returns {Promise<object>}
     */
    async getMessage(messageId) {
      const url = this._url(`/messages/${encodeURIComponent(messageId)}`);
      return toMessage(await this._pipeline.send("GET", url));
    }

    /**
     * The thread's messages, newest first, system messages (topicUpdated, participantAdded,
     * participantRemoved) included.
     * @param {{maxPageSize?: number, startTime?: Date}} [options]
     */
    listMessages(options = {}) {
      const url = this._url("/messages", {
        maxPageSize: options.maxPageSize,
        startTime: options.startTime ? isoTime(options.startTime) : undefined,
      });
      return this._pipeline.list(url, toMessage);
    }

    /**
     * Change one of the caller's messages (participants get `chatMessageEdited`). A metadata
     * key set to null is removed.
     * @param {string} messageId
     * @param {{content?: string, metadata?: Record<string, string|null>}} options
     * @returns {Promise<void>}
     */
    async updateMessage(messageId, options = {}) {
      const body = {};
      if (options.content !== undefined) body.content = options.content;
      if (options.metadata !== undefined) body.metadata = options.metadata;
      await this._pipeline.send("PATCH", this._url(`/messages/${encodeURIComponent(messageId)}`), {
        body,
        contentType: "application/merge-patch+json",
      });
    }

    /**
     * Delete one of the caller's messages (it stays listed with `deletedOn` and no content).
     * @param {string} messageId
     * @returns {Promise<void>}
     */
    async deleteMessage(messageId) {
      await this._pipeline.send("DELETE", this._url(`/messages/${encodeURIComponent(messageId)}`));
    }

    /**
     * Add participants (everyone gets `participantsAdded`).
     * @param {{participants: Array<{id: object|string, displayName?: string,
     *   shareHistoryTime?: Date}>}} request
     * @returns {Promise<{invalidParticipants?: Array<{code: string, message: string, target: string}>}>}
     */
    async addParticipants(request) {
      const body = { participants: request.participants.map(fromParticipant) };
      const result = await this._pipeline.send("POST", this._url("/participants/:add"), { body });
      return result && result.invalidParticipants ? { invalidParticipants: result.invalidParticipants } : {};
    }

    /**
     * The thread's participants: `{id, displayName?, shareHistoryTime?: Date}`.
     * @param {{maxPageSize?: number, skip?: number}} [options]
     */
    listParticipants(options = {}) {
      return this._pipeline.list(
        this._url("/participants", { maxPageSize: options.maxPageSize, skip: options.skip }),
        toParticipant
      );
    }

    /**
     * Remove a participant, or leave (remove yourself).
     * @param {object|string} participant  A CommunicationIdentifier, or a raw id.
     * @returns {Promise<void>}
     */
    async removeParticipant(participant) {
      await this._pipeline.send("POST", this._url("/participants/:remove"), {
        body: serializeIdentifier(participant),
      });
    }

    /**
     * Tell the others the caller is typing. Like the ACS SDK, sends at most once per 8 seconds.
     * @param {{senderDisplayName?: string}} [options]
     * @returns {Promise<boolean>} whether a notification was sent
     */
    async sendTypingNotification(options = {}) {
      const now = Date.now();
      if (now - this._lastTyping < TYPING_INTERVAL_MS) return false;
      this._lastTyping = now;
      const body = {};
      if (options.senderDisplayName !== undefined) body.senderDisplayName = options.senderDisplayName;
      try {
        await this._pipeline.send("POST", this._url("/typing"), { body });
      } catch (error) {
        this._lastTyping = 0;
        throw error;
      }
      return true;
    }

    /**
     * Mark the messages up to `chatMessageId` as read (the others get `readReceiptReceived`).
     * @param {{chatMessageId: string}} request
     * @returns {Promise<void>}
     */
    async sendReadReceipt(request) {
      await this._pipeline.send("POST", this._url("/readReceipts"), {
        body: { chatMessageId: request.chatMessageId },
      });
    }

    /**
     * Each participant's latest read receipt: `{sender, chatMessageId, readOn: Date}`.
     * @param {{maxPageSize?: number, skip?: number}} [options]
     */
    listReadReceipts(options = {}) {
      return this._pipeline.list(
        this._url("/readReceipts", { maxPageSize: options.maxPageSize, skip: options.skip }),
        toReadReceipt
      );
    }
  }

  const SpoolChat = {
    ChatClient,
    ChatThreadClient,
    RestError,
    getIdentifierRawId,
    serializeIdentifier,
    deserializeIdentifier,
    tokenExpiresAt,
    API_VERSION,
  };
  root.SpoolChat = SpoolChat;
  if (typeof module === "object" && module.exports) module.exports = SpoolChat;
})(typeof window !== "undefined" ? window : globalThis);
