/**
 * Spool calling client for the browser: 1:1 and group calls with WebRTC, signaled over Spool's
 * identity socket, with the class, method and event names of `@azure/communication-calling`
 * (CallClient, CallAgent, Call, IncomingCall, RemoteParticipant, DeviceManager,
 * LocalVideoStream, VideoStreamRenderer).
 *
 * No dependencies and no build step: load it with a `<script>` tag and use `window.SpoolCalling`.
 * docs/calling-client.md explains its use; docs/calls.md the signaling protocol it speaks.
 *
 * @example
 * const client = new SpoolCalling.CallClient();
 * const devices = await client.getDeviceManager();
 * const [camera] = await devices.getCameras();
 * const agent = await client.createCallAgent({ token, refresh: fetchNewToken });
 * agent.on("incomingCall", ({ incomingCall }) => incomingCall.accept());
 * const call = agent.startCall([{ communicationUserId: "8:acs:..." }], {
 *   videoOptions: { localVideoStreams: [new SpoolCalling.LocalVideoStream(camera)] },
 * });
 * call.on("stateChanged", () => console.log(call.state));
 */
(function (root) {
  "use strict";

  const PING_INTERVAL_MS = 25 * 1000;
  /** A socket that has not said hello after this long is given up and reopened. */
  const CONNECT_TIMEOUT_MS = 15 * 1000;
  const BACKOFF_INITIAL_MS = 500;
  const BACKOFF_MAX_MS = 30 * 1000;
  /** A command the server has not answered after this long fails. */
  const REQUEST_TIMEOUT_MS = 15 * 1000;
  /** After `call.hungUp`, how long to wait for the server's Disconnected (with its end code). */
  const HANG_UP_GRACE_MS = 3 * 1000;
  /** How long frames of a call id not known yet are kept (they can outrun the command's reply). */
  const EARLY_FRAME_MS = 10 * 1000;
  const MAX_EARLY_FRAMES = 200;
  /** How long before a token's expiry it is renewed (at most half its lifetime). */
  const REFRESH_BEFORE_EXPIRY_MS = 5 * 60 * 1000;
  const CLOSE_UNAUTHORIZED = 4001;
  /** The call's end reason when this client lost its socket (the server ends the leg the same way). */
  const END_SOCKET_GONE = { code: 410, subCode: 0 };
  const END_NORMAL = { code: 0, subCode: 0 };
  const SFU = "sfu";
  const MEDIA = "media"; // the media bridge of a call with an application in it (Call Automation)
  // In a group call through the SFU, the feed that carries the call's phones (the media
  // process's bridge to the VideoRoom): heard like the media bridge, not a participant.
  const PHONES_FEED = `${SFU}:phones`;
  // The ACS calling SDK's DtmfTone names, and the keys they stand for.
  const DTMF_KEYS = {
    Num0: "0", Num1: "1", Num2: "2", Num3: "3", Num4: "4", Num5: "5", Num6: "6", Num7: "7",
    Num8: "8", Num9: "9", Star: "*", Pound: "#", A: "A", B: "B", C: "C", D: "D",
  };
  /** Each command and the reply type that answers it (replies carry no request id: they come
   * back in order, one per command). `call.signal` has no reply: only an error if refused. */
  const REPLIES = {
    "call.invite": "call.invited",
    "call.accept": "call.accepted",
    "call.decline": "call.declined",
    "call.join": "call.joined",
    "call.hangup": "call.hungUp",
    "call.update": "call.updated",
    "call.sendDtmf": "call.dtmfSent",
    "call.addParticipant": "call.participantAdded",
    "call.removeParticipant": "call.participantRemoved",
    "token.renew": "token.renewed",
  };
  const COMMAND_OF_REPLY = Object.fromEntries(Object.entries(REPLIES).map(([c, r]) => [r, c]));
  const VIDEO_CONSTRAINTS = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 24 } };

  // --- Errors and small helpers ------------------------------------------------------------------

  /**
   * A refused command or a failed operation.
   * @property {string} code     The server's error code (e.g. "Forbidden", "CallNotFound") or
   *                             a client one ("NotConnected", "Timeout", "InvalidState").
   * @property {string} command  The command that was refused, when there is one.
   */
  class CallingError extends Error {
    constructor(message, { code = "", command } = {}) {
      super(message);
      this.name = "CallingError";
      this.code = code;
      this.command = command;
    }
  }

  class Emitter {
    constructor() {
      this._listeners = new Map();
    }

    on(event, listener) {
      if (typeof listener !== "function") throw new TypeError("listener must be a function.");
      if (!this._listeners.has(event)) this._listeners.set(event, new Set());
      this._listeners.get(event).add(listener);
    }

    off(event, listener) {
      const listeners = this._listeners.get(event);
      if (listeners) listeners.delete(listener);
    }

    emit(event, payload) {
      const listeners = [...(this._listeners.get(event) || [])];
      if (event === "error" && !listeners.length) {
        console.warn("SpoolCalling:", payload);
        return;
      }
      for (const listener of listeners) {
        try {
          listener(payload);
        } catch (error) {
          // A failing listener must not stop the others or the call: report it apart.
          setTimeout(() => {
            throw error;
          });
        }
      }
    }
  }

  /**
   * The raw id of an identifier: a string is a raw id already; `{communicationUserId}`,
   * `{rawId}`, `{phoneNumber}` or `{id}` give theirs.
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

  /** A raw id as a `CommunicationIdentifierKind`. */
  function identifierOf(rawId) {
    if (rawId.startsWith("8:acs:") || rawId.startsWith("8:spool:")) {
      return { kind: "communicationUser", communicationUserId: rawId };
    }
    if (rawId.startsWith("4:")) return { kind: "phoneNumber", phoneNumber: rawId.slice(2), rawId };
    return { kind: "unknown", id: rawId };
  }

  function backoffDelay(attempt) {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** attempt);
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

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

  /** The server's ICE servers as RTCIceServer entries (STUN entries come with empty credentials). */
  function rtcIceServers(servers) {
    return (servers || []).map((server) => {
      const entry = { urls: server.urls };
      if (server.username) entry.username = server.username;
      if (server.credential) entry.credential = server.credential;
      return entry;
    });
  }

  /** The end reason of a call the server refused to place, join or accept, by its error code
   * (`message` is a Spool extra). */
  function endReasonOf(error) {
    const code = error.code || "";
    let status = 500;
    if (code === "Forbidden") status = 403;
    else if (code.endsWith("NotFound")) status = 404;
    else if (code === "BadRequest") status = 400;
    else if (code === "NotConnected") status = 410;
    else if (code === "Timeout") status = 408;
    return { code: status, subCode: 0, message: error.message };
  }

  function stopTrack(track) {
    if (track) track.stop();
  }

  // --- Tokens ------------------------------------------------------------------------------------

  /** Holds the current token; renews it through the credential's refresh callback. */
  class TokenKeeper {
    constructor(credential) {
      this._refresh = null;
      if (typeof credential === "string") {
        this._token = credential;
      } else if (credential && typeof credential.token === "string") {
        this._token = credential.token;
        if (typeof credential.refresh === "function") this._refresh = credential.refresh;
      } else if (credential && typeof credential.getToken === "function") {
        // An ACS CommunicationTokenCredential: getToken() -> {token, expiresOnTimestamp}.
        this._token = "";
        this._refresh = async () => (await credential.getToken()).token;
      } else {
        throw new TypeError("credential must be a token string or {token, refresh?}.");
      }
      this._inFlight = null;
    }

    get canRefresh() {
      return this._refresh !== null;
    }

    /** The token to use now: renewed first when it is missing or expired. */
    async getToken() {
      const expiresAt = tokenExpiresAt(this._token);
      const stale = !this._token || (expiresAt !== undefined && expiresAt - Date.now() < 10 * 1000);
      if (stale && this.canRefresh) return this.refresh();
      return this._token;
    }

    /** When the token should be renewed (epoch ms), or undefined when it cannot or need not be. */
    get renewAt() {
      const expiresAt = tokenExpiresAt(this._token);
      if (!this.canRefresh || expiresAt === undefined) return undefined;
      const lifetime = expiresAt - Date.now();
      return expiresAt - Math.min(REFRESH_BEFORE_EXPIRY_MS, lifetime / 2);
    }

    /** Renew the token; concurrent callers share one call of the refresh callback. */
    async refresh() {
      if (!this.canRefresh) throw new CallingError("The token cannot be renewed.", { code: "InvalidToken" });
      if (!this._inFlight) {
        this._inFlight = (async () => {
          try {
            const token = await this._refresh();
            if (typeof token !== "string" || !token) {
              throw new TypeError("The refresh callback must resolve to a token string.");
            }
            this._token = token;
            return token;
          } finally {
            this._inFlight = null;
          }
        })();
      }
      return this._inFlight;
    }
  }

  // --- Devices -----------------------------------------------------------------------------------

  function mediaDevices() {
    const devices = root.navigator && root.navigator.mediaDevices;
    if (!devices) throw new CallingError("This browser has no media devices (or the page is not secure).", { code: "NotSupported" });
    return devices;
  }

  /**
   * Cameras, microphones and speakers (`enumerateDevices`), the microphone and speaker calls
   * use, and the permission prompt. Events: `videoDevicesUpdated`, `audioDevicesUpdated`,
   * `selectedMicrophoneChanged`, `selectedSpeakerChanged`.
   */
  class DeviceManager extends Emitter {
    constructor() {
      super();
      this.selectedMicrophone = undefined;
      this.selectedSpeaker = undefined;
      this._known = { video: "", audio: "" };
      const devices = root.navigator && root.navigator.mediaDevices;
      if (devices && devices.addEventListener) {
        devices.addEventListener("devicechange", () => this._onDeviceChange());
      }
    }

    /** Whether speakers can be chosen (`HTMLMediaElement.setSinkId`). */
    get isSpeakerSelectionAvailable() {
      return typeof root.HTMLMediaElement !== "undefined" && "setSinkId" in root.HTMLMediaElement.prototype;
    }

    /** @returns {Promise<Array<{id, name, deviceType}>>} VideoDeviceInfo entries. */
    async getCameras() {
      return (await this._list("videoinput")).map((device, n) => ({
        id: device.deviceId,
        name: device.label || `Camera ${n + 1}`,
        deviceType: "UsbCamera",
      }));
    }

    /** @returns {Promise<Array<{id, name, isSystemDefault, deviceType}>>} AudioDeviceInfo entries. */
    async getMicrophones() {
      return (await this._list("audioinput")).map((device, n) => ({
        id: device.deviceId,
        name: device.label || `Microphone ${n + 1}`,
        isSystemDefault: device.deviceId === "default",
        deviceType: "Microphone",
      }));
    }

    async getSpeakers() {
      return (await this._list("audiooutput")).map((device, n) => ({
        id: device.deviceId,
        name: device.label || `Speaker ${n + 1}`,
        isSystemDefault: device.deviceId === "default",
        deviceType: "Speaker",
      }));
    }

    /**
     * Ask the browser for camera and/or microphone access (its prompt, if not granted yet).
     * @returns {Promise<{audio: boolean, video: boolean}>} what was granted.
     */
    async askDevicePermission({ audio = false, video = false } = {}) {
      const granted = { audio: false, video: false };
      for (const kind of ["audio", "video"]) {
        if (!(kind === "audio" ? audio : video)) continue;
        try {
          const stream = await mediaDevices().getUserMedia({ [kind]: true });
          stream.getTracks().forEach(stopTrack);
          granted[kind] = true;
        } catch {
          granted[kind] = false;
        }
      }
      return granted;
    }

    /** The microphone calls use from now on (calls in progress switch to it). */
    async selectMicrophone(device) {
      this.selectedMicrophone = device || undefined;
      this.emit("selectedMicrophoneChanged");
    }

    /** The speaker remote audio plays on (calls in progress switch to it). */
    async selectSpeaker(device) {
      this.selectedSpeaker = device || undefined;
      this.emit("selectedSpeakerChanged");
    }

    async _list(kind) {
      const all = await mediaDevices().enumerateDevices();
      return all.filter((device) => device.kind === kind && device.deviceId);
    }

    async _onDeviceChange() {
      const all = await mediaDevices().enumerateDevices();
      const ids = (kinds) => all.filter((d) => kinds.includes(d.kind)).map((d) => d.deviceId).join(",");
      const video = ids(["videoinput"]);
      const audio = ids(["audioinput", "audiooutput"]);
      if (video !== this._known.video) this.emit("videoDevicesUpdated");
      if (audio !== this._known.audio) this.emit("audioDevicesUpdated");
      this._known = { video, audio };
    }

    /** A microphone track from the selected microphone (the default one if none is). */
    async _microphoneTrack() {
      const device = this.selectedMicrophone;
      const audio = device && device.id ? { deviceId: { exact: device.id } } : true;
      const stream = await mediaDevices().getUserMedia({ audio });
      return stream.getAudioTracks()[0];
    }
  }

  /**
   * A camera's video for calls and previews. The camera opens on first use (`getMediaStream`,
   * or a call starting video with it) and closes when the call stops video.
   */
  class LocalVideoStream extends Emitter {
    /** @param {{id: string, name?: string}} source  a camera from DeviceManager.getCameras() */
    constructor(source) {
      super();
      if (!source || typeof source.id !== "string") {
        throw new TypeError("LocalVideoStream needs a camera (a VideoDeviceInfo from getCameras()).");
      }
      this._source = source;
      this._stream = null;
      this._opening = null;
      this.mediaStreamType = "Video";
    }

    get source() {
      return this._source;
    }

    /** Use another camera; a call sending this stream switches without renegotiation. */
    async switchSource(source) {
      this._source = source;
      if (!this._stream) return;
      this._release();
      await this.getMediaStream();
      this.emit("_trackChanged");
    }

    /** The camera's MediaStream (opens the camera). */
    async getMediaStream() {
      if (this._stream && this._stream.getVideoTracks().some((t) => t.readyState === "live")) return this._stream;
      if (!this._opening) {
        this._opening = mediaDevices()
          .getUserMedia({ video: { deviceId: { exact: this._source.id }, ...VIDEO_CONSTRAINTS } })
          .then((stream) => {
            this._stream = stream;
            return stream;
          })
          .finally(() => {
            this._opening = null;
          });
      }
      return this._opening;
    }

    async _track() {
      return (await this.getMediaStream()).getVideoTracks()[0];
    }

    _release() {
      if (this._stream) this._stream.getTracks().forEach(stopTrack);
      this._stream = null;
      this.emit("_released");
    }
  }

  /**
   * Renders a LocalVideoStream or RemoteVideoStream: `createView()` answers a view whose
   * `target` is an element (a `<div>` holding a `<video>`) to put in the page.
   */
  class VideoStreamRenderer {
    constructor(videoStream) {
      if (!videoStream || typeof videoStream.getMediaStream !== "function") {
        throw new TypeError("VideoStreamRenderer needs a LocalVideoStream or RemoteVideoStream.");
      }
      this._stream = videoStream;
      this._views = new Set();
    }

    /**
     * @param {{scalingMode?: "Crop"|"Fit", isMirrored?: boolean}} options
     * @returns {Promise<{target: HTMLElement, scalingMode, isMirrored, updateScalingMode, dispose}>}
     */
    async createView({ scalingMode = "Crop", isMirrored = false } = {}) {
      const doc = root.document;
      const target = doc.createElement("div");
      target.className = "spool-video-view";
      target.style.cssText = "width:100%;height:100%;overflow:hidden;";
      const video = doc.createElement("video");
      video.autoplay = true;
      video.playsInline = true;
      video.muted = true; // remote audio plays apart (the SDK's own audio elements)
      video.style.cssText = "width:100%;height:100%;display:block;";
      target.append(video);
      const stream = this._stream;
      const attach = async () => {
        video.srcObject = await stream.getMediaStream();
        video.play().catch(() => {});
      };
      const onChange = () => attach().catch(() => {});
      stream.on("_trackChanged", onChange);
      const view = {
        target,
        scalingMode,
        isMirrored,
        updateScalingMode: async (mode) => {
          view.scalingMode = mode;
          video.style.objectFit = mode === "Fit" ? "contain" : "cover";
        },
        dispose: () => {
          stream.off("_trackChanged", onChange);
          video.srcObject = null;
          target.remove();
          this._views.delete(view);
        },
      };
      video.style.objectFit = scalingMode === "Fit" ? "contain" : "cover";
      if (isMirrored) video.style.transform = "scaleX(-1)";
      this._views.add(view);
      await attach();
      return view;
    }

    dispose() {
      for (const view of [...this._views]) view.dispose();
    }
  }

  // --- Remote participants -------------------------------------------------------------------------

  /** A remote participant's video. `isAvailable`: the participant's camera is on. */
  class RemoteVideoStream extends Emitter {
    constructor(participant, id) {
      super();
      this.id = id;
      this.mediaStreamType = "Video";
      this.isAvailable = false;
      this._participant = participant;
      this._mediaStream = new MediaStream();
    }

    /** A MediaStream with the participant's video track (Spool extra, like the SDK's raw access). */
    async getMediaStream() {
      return this._mediaStream;
    }

    get isReceiving() {
      return this._mediaStream.getVideoTracks().some((t) => t.readyState === "live" && !t.muted);
    }

    _setTrack(track) {
      for (const old of this._mediaStream.getVideoTracks()) this._mediaStream.removeTrack(old);
      if (track) this._mediaStream.addTrack(track);
      this.emit("_trackChanged");
    }

    _setAvailable(available) {
      if (this.isAvailable === available) return;
      this.isAvailable = available;
      this.emit("isAvailableChanged");
    }
  }

  /**
   * Someone else in the call. `identifier`, `state` ("Connecting", "Ringing", "Connected",
   * "Disconnected"), `isMuted`, `role`, `videoStreams`, and `mediaStream` (Spool extra: their
   * audio and video tracks in one MediaStream). Events: `stateChanged`, `isMutedChanged`,
   * `videoStreamsUpdated` ({added, removed}), `roleChanged`.
   */
  class RemoteParticipant extends Emitter {
    constructor(rawId, { state = "Connected", role = "Unknown", isMuted = false, isVideoOn = false } = {}) {
      super();
      this.identifier = identifierOf(rawId);
      this.displayName = "";
      this.state = state;
      this.role = role;
      this.isMuted = isMuted;
      this.isSpeaking = false;
      this.callEndReason = undefined;
      this.videoStreams = [];
      this.mediaStream = new MediaStream();
      this._rawId = rawId;
      this._isVideoOn = isVideoOn;
      this._video = new RemoteVideoStream(this, 1);
      this._audio = null; // the <audio> element playing this participant
    }

    get rawId() {
      return this._rawId;
    }

    _setState(state) {
      if (this.state === state) return;
      this.state = state;
      this.emit("stateChanged");
    }

    _update(entry) {
      if (typeof entry.isMuted === "boolean" && entry.isMuted !== this.isMuted) {
        this.isMuted = entry.isMuted;
        this.emit("isMutedChanged");
      }
      if (entry.role && entry.role !== this.role) {
        this.role = entry.role;
        this.emit("roleChanged");
      }
      if (typeof entry.isVideoOn === "boolean") {
        this._isVideoOn = entry.isVideoOn;
        this._video._setAvailable(this._isVideoOn && this.videoStreams.length > 0);
      }
    }

    /** A track arrived from this participant (on their peer connection). */
    _addTrack(track, speaker) {
      for (const old of this.mediaStream.getTracks().filter((t) => t.kind === track.kind)) {
        this.mediaStream.removeTrack(old);
      }
      this.mediaStream.addTrack(track);
      if (track.kind === "audio") {
        this._play(track, speaker);
        return;
      }
      this._video._setTrack(track);
      if (!this.videoStreams.length) {
        this.videoStreams = [this._video];
        this.emit("videoStreamsUpdated", { added: [this._video], removed: [] });
      }
      this._video._setAvailable(this._isVideoOn);
    }

    /** Their media stopped (peer closed): the video stream goes. */
    _dropMedia() {
      for (const track of this.mediaStream.getTracks()) this.mediaStream.removeTrack(track);
      this._stopAudio();
      if (this.videoStreams.length) {
        this._video._setAvailable(false);
        this._video._setTrack(null);
        this.videoStreams = [];
        this.emit("videoStreamsUpdated", { added: [], removed: [this._video] });
      }
    }

    _play(track, speaker) {
      this._stopAudio();
      if (typeof root.Audio !== "function") return;
      const audio = new root.Audio();
      audio.autoplay = true;
      audio.srcObject = new MediaStream([track]);
      if (speaker && speaker.id && typeof audio.setSinkId === "function") {
        audio.setSinkId(speaker.id).catch(() => {});
      }
      audio.play().catch(() => {
        // Autoplay refused until the user interacts with the page: retry on the next click.
        root.document.addEventListener("click", () => audio.play().catch(() => {}), { once: true });
      });
      this._audio = audio;
    }

    _setSpeaker(speaker) {
      if (this._audio && typeof this._audio.setSinkId === "function") {
        this._audio.setSinkId(speaker && speaker.id ? speaker.id : "").catch(() => {});
      }
    }

    _stopAudio() {
      if (!this._audio) return;
      this._audio.pause();
      this._audio.srcObject = null;
      this._audio = null;
    }
  }

  // --- Peer connections ------------------------------------------------------------------------------

  /**
   * One RTCPeerConnection of a call, named by its peer key: the other participant's raw id
   * (1:1 and mesh), "sfu" (what this client publishes to the SFU) or "sfu:<raw id>" (one
   * participant's media from the SFU). Remote ICE candidates wait for the remote description.
   */
  class Peer {
    constructor(call, key, participant) {
      this.key = key;
      this.participant = participant; // a RemoteParticipant, or null for the "sfu" publisher
      this._call = call;
      this._pendingCandidates = [];
      this._outgoingCandidates = [];
      this._descriptionSent = false;
      this.closed = false;
      const pc = new RTCPeerConnection({ iceServers: rtcIceServers(call._iceServers) });
      this.pc = pc;
      pc.onicecandidate = (event) => {
        const data = { candidate: event.candidate ? event.candidate.toJSON() : null };
        // Candidates follow the description they belong to.
        if (this._descriptionSent) call._signal(key, data);
        else this._outgoingCandidates.push(data);
      };
      pc.ontrack = (event) => {
        if (this.participant) this.participant._addTrack(event.track, call._deviceManager.selectedSpeaker);
        else if ((key === MEDIA || key === PHONES_FEED) && event.track.kind === "audio") call._playBridge(event.track);
      };
      pc.onconnectionstatechange = () => call._onPeerState(this);
    }

    /** Add the audio and video transceivers (video negotiated now even with no camera, so
     * starting video later is replaceTrack, without renegotiation). */
    addTransceivers(direction, kinds = ["audio", "video"]) {
      const media = this._call._media;
      for (const kind of kinds) {
        const track = direction === "recvonly" ? null : media[kind];
        this.pc.addTransceiver(track || kind, { direction, streams: [media.stream] });
      }
    }

    async offer() {
      await this.pc.setLocalDescription(await this.pc.createOffer());
      this._sendDescription();
    }

    /** Take the remote side's offer (answering it) or answer. */
    async onDescription(description, { send }) {
      const pc = this.pc;
      if (description.type === "offer" && pc.signalingState !== "stable") {
        // Both sides offered at once: the side with the greater raw id gives way.
        if (this._call._selfRawId < this.key) return;
        await pc.setLocalDescription({ type: "rollback" });
      }
      await pc.setRemoteDescription(description);
      for (const candidate of this._pendingCandidates.splice(0)) await this._addCandidate(candidate);
      if (description.type !== "offer") return;
      const media = this._call._media;
      for (const transceiver of pc.getTransceivers()) {
        const kind = transceiver.receiver.track.kind;
        if (send) {
          transceiver.direction = "sendrecv";
          await transceiver.sender.replaceTrack(media[kind] || null);
          if (transceiver.sender.setStreams) transceiver.sender.setStreams(media.stream);
        } else {
          transceiver.direction = "recvonly";
        }
      }
      await pc.setLocalDescription(await pc.createAnswer());
      this._sendDescription();
    }

    async onCandidate(candidate) {
      if (!candidate) return; // the remote side's end of candidates: nothing to do
      if (!this.pc.remoteDescription) this._pendingCandidates.push(candidate);
      else await this._addCandidate(candidate);
    }

    async replaceTrack(kind, track) {
      for (const transceiver of this.pc.getTransceivers()) {
        if (transceiver.receiver.track.kind !== kind || transceiver.currentDirection === "stopped") continue;
        if (transceiver.direction === "recvonly" || transceiver.direction === "inactive") continue;
        await transceiver.sender.replaceTrack(track || null);
      }
    }

    close() {
      if (this.closed) return;
      this.closed = true;
      this.pc.onicecandidate = this.pc.ontrack = this.pc.onconnectionstatechange = null;
      this.pc.close();
      if (this.participant && this._call._peerOf(this.participant) === null) this.participant._dropMedia();
    }

    async stats() {
      const totals = {
        peer: this.key,
        participant: this.participant ? this.participant.rawId : null,
        connectionState: this.pc.connectionState,
        bytesSent: 0,
        bytesReceived: 0,
        audioBytesSent: 0,
        videoBytesSent: 0,
        audioBytesReceived: 0,
        videoBytesReceived: 0,
        audioEnergyReceived: 0, // the received audio's total energy: 0 for silence
      };
      if (this.closed) return totals;
      const report = await this.pc.getStats();
      report.forEach((entry) => {
        const kind = entry.kind || entry.mediaType;
        if (entry.type === "outbound-rtp") {
          totals.bytesSent += entry.bytesSent || 0;
          if (kind === "audio" || kind === "video") totals[`${kind}BytesSent`] += entry.bytesSent || 0;
        } else if (entry.type === "inbound-rtp") {
          totals.bytesReceived += entry.bytesReceived || 0;
          if (kind === "audio" || kind === "video") totals[`${kind}BytesReceived`] += entry.bytesReceived || 0;
          if (kind === "audio") totals.audioEnergyReceived += entry.totalAudioEnergy || 0;
        }
      });
      return totals;
    }

    _sendDescription() {
      const { type, sdp } = this.pc.localDescription;
      this._call._signal(this.key, { type, sdp });
      this._descriptionSent = true;
      for (const data of this._outgoingCandidates.splice(0)) this._call._signal(this.key, data);
    }

    async _addCandidate(candidate) {
      try {
        await this.pc.addIceCandidate(candidate);
      } catch (error) {
        console.warn("SpoolCalling: an ICE candidate was refused", error);
      }
    }
  }

  // --- Calls -------------------------------------------------------------------------------------------

  /**
   * A call: 1:1 (`startCall`, an accepted IncomingCall) or group (`join`).
   * Properties: `id`, `state` ("None", "Connecting", "Ringing", "Connected", "Disconnecting",
   * "Disconnected"), `direction`, `callEndReason`, `isMuted`, `isLocalVideoStarted`,
   * `localVideoStreams`, `role`, `remoteParticipants`, `info`.
   * Events: `stateChanged`, `idChanged`, `remoteParticipantsUpdated` ({added, removed}),
   * `isMutedChanged`, `isLocalVideoStartedChanged`, `localVideoStreamsUpdated` ({added, removed}),
   * `roleChanged`.
   */
  class Call extends Emitter {
    constructor(agent, { direction, kind, muted = false, localVideoStream = null, info = {} }) {
      super();
      this.id = "";
      this.state = "None";
      this.direction = direction;
      this._kind = kind; // "oneToOne" or "group"
      this.callEndReason = undefined;
      this.isMuted = Boolean(muted);
      this.role = "Unknown";
      this.topology = kind === "group" ? undefined : "peerToPeer";
      this.info = info;
      this.remoteParticipants = [];
      this.localVideoStreams = localVideoStream ? [localVideoStream] : [];
      this._agent = agent;
      this._deviceManager = agent._deviceManager;
      this._selfRawId = agent._selfRawId;
      this._peers = new Map();
      this._media = { stream: new MediaStream(), audio: null, video: null };
      this._iceServers = [];
      this._queue = Promise.resolve(); // frames are handled one at a time, in order
      this._ready = null; // resolves once the server has answered the call's first command
      this._hangUpTimer = null;
      this._onMicrophoneChanged = () => this._enqueue(() => this._switchMicrophone());
      this._onSpeakerChanged = () => {
        for (const participant of this.remoteParticipants) participant._setSpeaker(this._deviceManager.selectedSpeaker);
      };
      this._onCameraChanged = () => this._enqueue(() => this._switchCamera());
      this._deviceManager.on("selectedMicrophoneChanged", this._onMicrophoneChanged);
      this._deviceManager.on("selectedSpeakerChanged", this._onSpeakerChanged);
    }

    get isLocalVideoStarted() {
      return this.localVideoStreams.length > 0;
    }

    get totalParticipantCount() {
      return this.remoteParticipants.length + 1;
    }

    /** Whether this participant may send media (a room's Consumer only receives). */
    get canSend() {
      return this.role !== "Consumer";
    }

    async mute() {
      await this._setMuted(true);
    }

    async unmute() {
      if (!this.canSend) throw new CallingError("A Consumer cannot unmute.", { code: "Forbidden" });
      await this._setMuted(false);
    }

    /** Send this camera (the video transceiver was negotiated at the start: no renegotiation). */
    async startVideo(localVideoStream) {
      if (!(localVideoStream instanceof LocalVideoStream)) {
        throw new TypeError("startVideo needs a LocalVideoStream.");
      }
      if (!this.canSend) throw new CallingError("A Consumer cannot send video.", { code: "Forbidden" });
      if (this.isLocalVideoStarted) {
        if (this.localVideoStreams[0] === localVideoStream) return;
        throw new CallingError("Video is already started: stop it first or switch its source.", { code: "InvalidState" });
      }
      this.localVideoStreams = [localVideoStream];
      localVideoStream.on("_trackChanged", this._onCameraChanged);
      this.emit("localVideoStreamsUpdated", { added: [localVideoStream], removed: [] });
      this.emit("isLocalVideoStartedChanged");
      if (this.state === "Connected" || this._peers.size) {
        await this._enqueue(() => this._switchCamera());
        await this._sendUpdate({ videoOn: true });
      }
    }

    async stopVideo(localVideoStream) {
      const stream = this.localVideoStreams[0];
      if (!stream || (localVideoStream && localVideoStream !== stream)) return;
      this.localVideoStreams = [];
      stream.off("_trackChanged", this._onCameraChanged);
      await this._enqueue(async () => {
        this._media.video = null;
        for (const peer of this._peers.values()) await peer.replaceTrack("video", null);
      });
      stream._release();
      this.emit("localVideoStreamsUpdated", { added: [], removed: [stream] });
      this.emit("isLocalVideoStartedChanged");
      await this._sendUpdate({ videoOn: false });
    }

    /** Press a key (`DtmfTone`: "Num0".."Num9", "Star", "Pound", "A".."D"), as the ACS calling
     * SDK's `sendDtmf`. Carried on signaling: an application's recognize hears it. */
    async sendDtmf(dtmfTone) {
      const tone = DTMF_KEYS[dtmfTone] || (Object.values(DTMF_KEYS).includes(dtmfTone) ? dtmfTone : null);
      if (!tone) throw new CallingError(`Not a DTMF tone: ${dtmfTone}`, { code: "BadRequest" });
      if (this.state !== "Connected") throw new CallingError("The call is not connected.", { code: "InvalidState" });
      await this._agent._request("call.sendDtmf", { callId: this.id, tone });
    }

    /** Dial a phone into this group call or room, as the ACS calling SDK's `addParticipant`
     * ({phoneNumber}, {alternateCallerId: {phoneNumber}}, one of the resource's numbers): the
     * RemoteParticipant comes back at once, "Connecting"; it turns "Connected" when the phone
     * answers, or "Disconnected" with its callEndReason (486 busy, 480 no answer...). */
    addParticipant(identifier, options = {}) {
      const number = identifier && (identifier.phoneNumber || (identifier.rawId || "").replace(/^4:/, ""));
      if (!number || !number.startsWith("+")) {
        throw new CallingError("addParticipant takes a phone number ({phoneNumber: '+1...'}).", { code: "BadRequest" });
      }
      if (this.state !== "Connected") throw new CallingError("The call is not connected.", { code: "InvalidState" });
      const rawId = `4:${number}`;
      const participant = this._participant(rawId) || this._addParticipants([{ rawId }], "Connecting")[0];
      this._agent
        ._request("call.addParticipant", {
          callId: this.id,
          participant: { rawId },
          alternateCallerId: options.alternateCallerId || null,
        })
        .catch((error) => {
          this._removeParticipants([rawId], { code: 400, subCode: 0, message: error.message });
          this.emit("error", error);
        });
      return participant;
    }

    /** Hang up a phone this call dialed (ringing or answered). */
    async removeParticipant(identifier) {
      const rawId = identifier.rawId || (identifier.phoneNumber ? `4:${identifier.phoneNumber}` : "");
      await this._agent._request("call.removeParticipant", { callId: this.id, rawId });
    }

    /** Leave the call; `forEveryone` ends a group call for all (a room's Presenters, anyone in
     * a group). */
    async hangUp({ forEveryone = false } = {}) {
      if (this.state === "Disconnected" || this.state === "Disconnecting") return;
      this._setState("Disconnecting");
      // Still placing, joining or accepting: the server names the call first.
      if (!this.id && this._ready) await this._ready.catch(() => {});
      if (this.state === "Disconnected") return;
      if (!this.id) {
        this._end(END_NORMAL);
        return;
      }
      let reply;
      try {
        reply = await this._agent._request("call.hangup", { callId: this.id, forEveryone });
      } catch (error) {
        this._end(END_NORMAL);
        if (error.code !== "NotConnected") throw error;
        return;
      }
      // A call that is over says how it ended in the reply (487 when it still rang); leaving a
      // group call that goes on, the server's Disconnected frame follows.
      if (reply && reply.callEndReason) {
        this._end(reply.callEndReason);
        return;
      }
      this._hangUpTimer = setTimeout(() => this._end(END_NORMAL), HANG_UP_GRACE_MS);
    }

    /**
     * Spool extra: bytes sent and received, summed over every peer connection's
     * outbound-rtp / inbound-rtp stats, with each peer's own figures in `peers`.
     */
    async getStats() {
      const peers = await Promise.all([...this._peers.values()].map((peer) => peer.stats()));
      const sum = (field) => peers.reduce((total, peer) => total + peer[field], 0);
      return {
        bytesSent: sum("bytesSent"),
        bytesReceived: sum("bytesReceived"),
        audioBytesSent: sum("audioBytesSent"),
        videoBytesSent: sum("videoBytesSent"),
        audioBytesReceived: sum("audioBytesReceived"),
        videoBytesReceived: sum("videoBytesReceived"),
        peers,
      };
    }

    // --- internals: state -----------------------------------------------------------------------

    _setState(state) {
      if (this.state === state || this.state === "Disconnected") return;
      if (this.state === "Disconnecting") return; // only _end moves on from here
      this.state = state;
      this.emit("stateChanged");
    }

    _setId(id) {
      if (this.id === id) return;
      this.id = id;
      this.emit("idChanged");
    }

    _enqueue(task) {
      const run = this._queue.then(task);
      this._queue = run.catch((error) => {
        if (this.state !== "Disconnected") console.warn("SpoolCalling:", error);
      });
      return run;
    }

    async _setMuted(muted) {
      if (this._media.audio) this._media.audio.enabled = !muted;
      if (this.isMuted !== muted) {
        this.isMuted = muted;
        this.emit("isMutedChanged");
      }
      await this._sendUpdate({ muted });
    }

    async _sendUpdate(fields) {
      if (!this.id || this.state !== "Connected") return;
      try {
        await this._agent._request("call.update", { callId: this.id, ...fields });
      } catch (error) {
        if (this.state === "Connected") throw error;
      }
    }

    /** Open the microphone (and the camera, if video is started) for sending. */
    async _openMedia() {
      if (!this.canSend) return;
      if (!this._media.audio) {
        try {
          this._media.audio = await this._deviceManager._microphoneTrack();
          this._media.audio.enabled = !this.isMuted;
          this._media.stream.addTrack(this._media.audio);
        } catch (error) {
          // No microphone (or no permission): the call goes on, receiving only.
          this._agent.emit("error", new CallingError(`The microphone could not be opened: ${error.message}`, { code: "MicrophoneUnavailable" }));
        }
      }
      if (this.isLocalVideoStarted && !this._media.video) await this._openCamera();
    }

    async _openCamera() {
      try {
        const track = await this.localVideoStreams[0]._track();
        this._media.video = track;
        for (const old of this._media.stream.getVideoTracks()) this._media.stream.removeTrack(old);
        this._media.stream.addTrack(track);
      } catch (error) {
        this._agent.emit("error", new CallingError(`The camera could not be opened: ${error.message}`, { code: "CameraUnavailable" }));
      }
    }

    async _switchCamera() {
      if (!this.isLocalVideoStarted) return;
      this._media.video = null;
      await this._openCamera();
      for (const peer of this._peers.values()) await peer.replaceTrack("video", this._media.video);
    }

    async _switchMicrophone() {
      if (!this._media.audio || this.state === "Disconnected") return;
      const old = this._media.audio;
      const track = await this._deviceManager._microphoneTrack();
      track.enabled = !this.isMuted;
      this._media.audio = track;
      this._media.stream.removeTrack(old);
      this._media.stream.addTrack(track);
      for (const peer of this._peers.values()) await peer.replaceTrack("audio", track);
      stopTrack(old);
    }

    // --- internals: participants and peers ------------------------------------------------------

    _participant(rawId) {
      return this.remoteParticipants.find((p) => p.rawId === rawId) || null;
    }

    _addParticipants(entries, state = "Connected") {
      const added = [];
      for (const entry of entries) {
        const rawId = entry.rawId;
        let participant = this._participant(rawId);
        if (participant) {
          participant._update(entry);
          participant._setState(state);
          continue;
        }
        participant = new RemoteParticipant(rawId, { state, role: entry.role, isMuted: entry.isMuted, isVideoOn: entry.isVideoOn });
        this.remoteParticipants = [...this.remoteParticipants, participant];
        added.push(participant);
      }
      if (added.length) this.emit("remoteParticipantsUpdated", { added, removed: [] });
      return added;
    }

    _removeParticipants(rawIds, reason = END_NORMAL) {
      const removed = this.remoteParticipants.filter((p) => rawIds.includes(p.rawId));
      if (!removed.length) return;
      for (const participant of removed) {
        for (const peer of [...this._peers.values()]) {
          if (peer.participant === participant) this._closePeer(peer.key);
        }
        participant._dropMedia();
        participant.callEndReason = reason;
        participant._setState("Disconnected");
      }
      this.remoteParticipants = this.remoteParticipants.filter((p) => !removed.includes(p));
      this.emit("remoteParticipantsUpdated", { added: [], removed });
    }

    _peerOf(participant) {
      for (const peer of this._peers.values()) if (peer.participant === participant && !peer.closed) return peer;
      return null;
    }

    /** The participant a peer key stands for ("sfu" publishes: nobody). */
    _participantOfKey(key) {
      if (key === SFU || key === MEDIA || key === PHONES_FEED) return null;
      const rawId = key.startsWith(`${SFU}:`) ? key.slice(SFU.length + 1) : key;
      return this._participant(rawId) || this._addParticipants([{ rawId }])[0];
    }

    _newPeer(key) {
      this._closePeer(key);
      const peer = new Peer(this, key, this._participantOfKey(key));
      this._peers.set(key, peer);
      return peer;
    }

    _closePeer(key) {
      const peer = this._peers.get(key);
      if (!peer) return;
      this._peers.delete(key);
      peer.close();
    }

    _onPeerState(peer) {
      if (peer.pc.connectionState === "failed") {
        this._agent.emit("error", new CallingError(`The media connection to ${peer.key} failed.`, { code: "MediaConnectionFailed" }));
      }
    }

    /** Start media once the call is live: offer to whoever this side must offer to. */
    async _startMedia(offerTo) {
      await this._openMedia();
      if (this.topology === "bridge") {
        // Everyone's audio meets in the media bridge: one connection, audio only.
        const bridge = this._newPeer(MEDIA);
        bridge.addTransceivers(this.canSend ? "sendrecv" : "recvonly", ["audio"]);
        await bridge.offer();
        return;
      }
      if (this.topology === "sfu") {
        // One send-only connection publishes; the SFU offers each participant's media apart.
        if (!this.canSend) return;
        const publisher = this._newPeer(SFU);
        publisher.addTransceivers("sendonly");
        await publisher.offer();
        return;
      }
      for (const rawId of offerTo) {
        const peer = this._newPeer(rawId);
        peer.addTransceivers(this.canSend ? "sendrecv" : "recvonly");
        await peer.offer();
      }
    }

    _signal(key, data) {
      if (!this.id || this.state === "Disconnected") return;
      this._agent._send({ type: "call.signal", callId: this.id, to: key, data });
    }

    // --- internals: frames from the server ------------------------------------------------------

    _onFrame(frame) {
      this._enqueue(async () => {
        if (this._ready) await this._ready;
        await this._handle(frame);
      });
    }

    async _handle(frame) {
      if (this.state === "Disconnected") return;
      switch (frame.event) {
        case "stateChanged":
          return this._onStateChanged(frame);
        case "signal":
          return this._onSignal(frame);
        case "participantsUpdated":
          this._addParticipants(frame.added || []);
          this._removeParticipants(frame.removed || [], frame.callEndReason || END_NORMAL);
          return;
        case "participantStateChanged": {
          const participant = frame.participant && this._participant(frame.participant.rawId);
          if (participant) participant._update(frame.participant);
          return;
        }
        default:
          return;
      }
    }

    async _onStateChanged(frame) {
      if (frame.state === "Disconnected") {
        this._end(frame.callEndReason || END_NORMAL);
        return;
      }
      if (frame.state === "Ringing") {
        this._setState("Ringing");
        for (const participant of this.remoteParticipants) participant._setState("Ringing");
        return;
      }
      if (frame.state === "EarlyMedia" && frame.topology === "bridge") {
        // A phone's network plays ringback or an announcement before the phone answers: hear
        // it through the bridge (which keeps this side out of the mix until the answer).
        if (this.state !== "Ringing" && this.state !== "Connecting") return;
        this._setState("EarlyMedia");
        for (const participant of this.remoteParticipants) participant._setState("EarlyMedia");
        this.topology = "bridge";
        await this._startMedia([]);
        return;
      }
      if (frame.state !== "Connected" || this.state === "Connected" || this.state === "Disconnecting") return;
      for (const participant of this.remoteParticipants) participant._setState("Connected");
      this._setState("Connected");
      // The Connected frame carries both legs' microphone and camera state.
      for (const entry of frame.participants || []) {
        const participant = this._participant(entry.rawId);
        if (participant) participant._update(entry);
      }
      if (frame.topology === "bridge") {
        // A call with an application in it: both directions send their media to the bridge
        // (already, since early media).
        this.topology = "bridge";
        if (!this._peers.has(MEDIA)) await this._startMedia([]);
        return;
      }
      // In a 1:1 call the caller offers once the callee has answered.
      if (this.direction === "Outgoing") await this._startMedia(this.remoteParticipants.map((p) => p.rawId));
    }

    async _onSignal(frame) {
      const key = frame.from;
      const data = frame.data || {};
      if (typeof key !== "string" || !key) return;
      if (data.type === "bye") {
        const peer = this._peers.get(key);
        this._closePeer(key);
        if (peer && peer.participant) peer.participant._dropMedia();
        return;
      }
      let peer = this._peers.get(key);
      if ("candidate" in data) {
        if (peer) await peer.onCandidate(data.candidate);
        return;
      }
      if (data.type === "offer") {
        if (!peer) peer = this._newPeer(key);
        // A feed from the SFU is received only; a mesh or 1:1 peer gets our media too.
        const send = this.canSend && !key.startsWith(`${SFU}:`);
        await peer.onDescription(data, { send });
      } else if (data.type === "answer" && peer) {
        await peer.onDescription(data, { send: this.canSend });
      }
    }

    /** The bridge's mix (the application's prompts and the other participants). */
    _playBridge(track) {
      if (this._bridgeAudio) this._bridgeAudio.pause();
      if (typeof root.Audio !== "function") return;
      const audio = new root.Audio();
      audio.autoplay = true;
      audio.srcObject = new MediaStream([track]);
      audio.play().catch(() => {
        root.document.addEventListener("click", () => audio.play().catch(() => {}), { once: true });
      });
      this._bridgeAudio = audio;
    }

    /** The call is over (a Disconnected frame, a lost socket, or a failed start). */
    _end(reason) {
      if (this.state === "Disconnected") return;
      if (this._bridgeAudio) {
        this._bridgeAudio.pause();
        this._bridgeAudio.srcObject = null;
        this._bridgeAudio = null;
      }
      clearTimeout(this._hangUpTimer);
      for (const key of [...this._peers.keys()]) this._closePeer(key);
      for (const participant of this.remoteParticipants) {
        participant._dropMedia();
        participant.callEndReason = reason;
        participant._setState("Disconnected");
      }
      stopTrack(this._media.audio);
      this._media.audio = null;
      this._media.video = null;
      for (const stream of this.localVideoStreams) {
        stream.off("_trackChanged", this._onCameraChanged);
        stream._release();
      }
      this._deviceManager.off("selectedMicrophoneChanged", this._onMicrophoneChanged);
      this._deviceManager.off("selectedSpeakerChanged", this._onSpeakerChanged);
      this.callEndReason = reason;
      this.state = "Disconnected";
      this.emit("stateChanged");
      this._agent._forget(this);
    }
  }

  /**
   * A call ringing this identity. `id`, `callerInfo` ({identifier, displayName}), `video`
   * (Spool extra: whether the caller sends video). `accept(options)` answers a Call; `reject()`
   * declines (603). Event: `callEnded` ({callEndReason}) when it stops ringing unanswered here
   * (cancelled, declined, or answered on another device).
   */
  class IncomingCall extends Emitter {
    constructor(agent, frame) {
      super();
      this.id = frame.callId;
      const caller = frame.caller || {};
      const rawId = caller.communicationUserId || caller.rawId || caller.id || "";
      this.callerInfo = { identifier: identifierOf(rawId), displayName: "" };
      this.video = Boolean(frame.video);
      this._rawId = rawId;
      this._agent = agent;
      this._done = false;
    }

    /** @param {{videoOptions?: {localVideoStreams}, audioOptions?: {muted}}} options */
    async accept(options = {}) {
      if (this._done) throw new CallingError("The call is no longer ringing.", { code: "InvalidState" });
      this._done = true;
      this._agent._incoming.delete(this.id);
      return this._agent._acceptCall(this, options);
    }

    async reject() {
      if (this._done) return;
      this._done = true;
      await this._agent._request("call.decline", { callId: this.id });
    }

    _onFrame(frame) {
      if (frame.event !== "stateChanged") return;
      const elsewhere = frame.state === "Connected" && frame.answeredBy !== this._agent._socketId;
      if (frame.state === "Disconnected" || elsewhere) {
        this._done = true;
        this._agent._incoming.delete(this.id);
        this.emit("callEnded", { callEndReason: frame.callEndReason || END_NORMAL });
      }
    }
  }

  // --- The call agent ----------------------------------------------------------------------------------

  /**
   * One identity's calling: places (`startCall`), joins (`join`) and receives (`incomingCall`)
   * calls over the identity socket, which it keeps open (reconnecting with backoff) until
   * `dispose()`. Events: `incomingCall` ({incomingCall}), `callsUpdated` ({added, removed}),
   * `connectionStateChanged` ({oldValue, newValue, reason}), `error` (a CallingError).
   */
  class CallAgent extends Emitter {
    constructor(client, tokens, options) {
      super();
      this._client = client;
      this._deviceManager = client._deviceManager;
      this._tokens = tokens;
      this._socketUrl = socketUrlOf(options);
      this._WebSocket = options.webSocket || root.WebSocket;
      this.displayName = options.displayName || "";
      this.calls = [];
      this.connectionState = "Disconnected";
      this._selfRawId = "";
      this._socketId = "";
      this._socket = null;
      this._disposed = false;
      this._attempt = 0;
      this._timers = { reconnect: null, ping: null, renew: null };
      this._heardSincePing = true;
      this._pending = new Map(); // command -> [{resolve, reject, timer}], answered in order
      this._incoming = new Map(); // call id -> IncomingCall
      this._byId = new Map(); // call id -> Call
      this._early = []; // frames of call ids not known yet: {frame, at}
      this._connected = null;
    }

    /** The identity's raw id (Spool extra), known once connected. */
    get identifier() {
      return this._selfRawId ? identifierOf(this._selfRawId) : undefined;
    }

    /**
     * Ring one identity, or call a phone number. `participants`: one `{communicationUserId}`,
     * `{phoneNumber}` (or raw id); options: `videoOptions.localVideoStreams`,
     * `audioOptions.muted`, and for a phone `alternateCallerId: {phoneNumber}` (one of the
     * resource's numbers). Answers the Call at once, in state "Connecting"; it goes "Ringing",
     * then "Connected" or "Disconnected".
     */
    startCall(participants, options = {}) {
      const list = Array.isArray(participants) ? participants : [participants];
      if (list.length !== 1) {
        throw new CallingError("Spool places 1:1 calls: give exactly one participant (use join for groups).", { code: "NotSupported" });
      }
      const to = getIdentifierRawId(list[0]);
      const call = this._newCall({ direction: "Outgoing", kind: "oneToOne", options });
      call._addParticipants([{ rawId: to }], "Connecting");
      call._ready = (async () => {
        try {
          await call._openMedia();
          const invite = { to, video: call.isLocalVideoStarted, muted: call.isMuted };
          if (options.alternateCallerId) invite.alternateCallerId = getIdentifierRawId(options.alternateCallerId);
          const reply = await this._request("call.invite", invite);
          call._iceServers = reply.iceServers;
          this._register(call, reply.callId);
        } catch (error) {
          call._end(endReasonOf(error));
          this.emit("error", error);
        }
      })();
      return call;
    }

    /**
     * Join the live call of a group (`{groupId}`: any UUID) or a room (`{roomId}`), starting it
     * if nobody is in it. Answers the Call at once, in state "Connecting".
     */
    join(locator, options = {}) {
      const target = {};
      if (locator && typeof locator.groupId === "string") target.groupId = locator.groupId;
      else if (locator && typeof locator.roomId === "string") target.roomId = locator.roomId;
      else throw new TypeError("join needs {groupId} or {roomId}.");
      const call = this._newCall({ direction: "Outgoing", kind: "group", options, info: { ...target } });
      call._ready = (async () => {
        try {
          const reply = await this._request("call.join", {
            ...target,
            video: call.isLocalVideoStarted,
            muted: call.isMuted,
          });
          call._iceServers = reply.iceServers;
          call.topology = reply.topology;
          if (reply.role !== call.role) {
            call.role = reply.role;
            call.emit("roleChanged");
          }
          if (!call.canSend) {
            call.isMuted = true; // the server has it so; a Consumer's camera stays off
            if (call.localVideoStreams.length) {
              call.localVideoStreams = [];
              call.emit("isLocalVideoStartedChanged");
            }
          }
          this._register(call, reply.callId);
          call._addParticipants(reply.participants || []);
          call._setState("Connected");
          if (call.state !== "Connected") return; // hung up meanwhile
          // In a mesh the joiner offers to everyone there; through the SFU it publishes.
          await call._startMedia((reply.participants || []).map((p) => p.rawId));
        } catch (error) {
          call._end(endReasonOf(error));
          this.emit("error", error);
        }
      })();
      return call;
    }

    /** Hang up every call and close the socket. */
    async dispose() {
      if (this._disposed) return;
      await Promise.all(this.calls.map((call) => call.hangUp().catch(() => {})));
      this._disposed = true;
      for (const timer of Object.values(this._timers)) clearTimeout(timer);
      for (const call of [...this.calls]) call._end(END_NORMAL);
      this._failPending(new CallingError("The call agent was disposed.", { code: "NotConnected" }));
      if (this._socket) {
        const socket = this._socket;
        this._socket = null;
        socket.onclose = socket.onmessage = null;
        socket.close(1000);
      }
      this._setConnectionState("Disconnected", "disposed");
      this._client._agent = null;
    }

    // --- internals: calls ---------------------------------------------------------------------

    _newCall({ direction, kind, options, info }) {
      if (this._disposed) throw new CallingError("The call agent was disposed.", { code: "InvalidState" });
      const videoStreams = (options.videoOptions && options.videoOptions.localVideoStreams) || [];
      const call = new Call(this, {
        direction,
        kind,
        muted: options.audioOptions && options.audioOptions.muted,
        localVideoStream: videoStreams[0] || null,
        info,
      });
      for (const stream of call.localVideoStreams) stream.on("_trackChanged", call._onCameraChanged);
      this.calls = [...this.calls, call];
      call._setState("Connecting");
      this.emit("callsUpdated", { added: [call], removed: [] });
      return call;
    }

    async _acceptCall(incoming, options) {
      const call = this._newCall({ direction: "Incoming", kind: "oneToOne", options });
      call._addParticipants([{ rawId: incoming._rawId, isVideoOn: incoming.video }], "Connected");
      let failure = null;
      call._ready = (async () => {
        try {
          await call._openMedia();
          const reply = await this._request("call.accept", {
            callId: incoming.id,
            video: call.isLocalVideoStarted,
            muted: call.isMuted,
          });
          call._iceServers = reply.iceServers;
        } catch (error) {
          failure = error;
          call._end(endReasonOf(error));
        }
      })();
      this._register(call, incoming.id); // before the accept goes out: its frames come here
      await call._ready;
      if (failure) throw failure;
      return call;
    }

    /** The call now has its id: frames for it that came early are handled now, in order. */
    _register(call, id) {
      call._setId(id);
      this._byId.set(id, call);
      const now = Date.now();
      const early = this._early.filter((item) => item.frame.callId === id);
      this._early = this._early.filter((item) => item.frame.callId !== id && now - item.at < EARLY_FRAME_MS);
      for (const item of early) call._onFrame(item.frame);
    }

    _forget(call) {
      if (call.id) this._byId.delete(call.id);
      if (!this.calls.includes(call)) return;
      this.calls = this.calls.filter((c) => c !== call);
      this.emit("callsUpdated", { added: [], removed: [call] });
      this._renewIfIdle();
    }

    _onCallFrame(frame) {
      if (frame.event === "incomingCall") {
        if (this._byId.has(frame.callId) || this._incoming.has(frame.callId)) return;
        const incoming = new IncomingCall(this, frame);
        this._incoming.set(incoming.id, incoming);
        this.emit("incomingCall", { incomingCall: incoming });
        return;
      }
      const call = this._byId.get(frame.callId);
      if (call) {
        call._onFrame(frame);
        return;
      }
      const incoming = this._incoming.get(frame.callId);
      if (incoming) {
        incoming._onFrame(frame);
        return;
      }
      // A frame can outrun the reply that names its call (e.g. Ringing before call.invited).
      this._early.push({ frame, at: Date.now() });
      if (this._early.length > MAX_EARLY_FRAMES) this._early.shift();
    }

    // --- internals: the socket ----------------------------------------------------------------

    /** Open the socket; resolves after its hello (rejects if the first attempt is refused). */
    _connect() {
      if (!this._connected) {
        this._connected = new Promise((resolve, reject) => {
          this._onFirstHello = resolve;
          this._onFirstRefusal = reject;
        });
        this._open();
      }
      return this._connected;
    }

    async _open() {
      let token;
      try {
        token = await this._tokens.getToken();
      } catch (error) {
        this._refused(error);
        return;
      }
      if (this._disposed || this._socket) return;
      const socket = new this._WebSocket(`${this._socketUrl}?access_token=${encodeURIComponent(token)}`);
      this._socket = socket;
      socket._helloTimer = setTimeout(() => socket.close(4000, "no hello"), CONNECT_TIMEOUT_MS);
      socket.onmessage = (event) => this._onMessage(socket, event);
      socket.onclose = (event) => this._onClose(socket, event);
      socket.onerror = () => {}; // a close follows
    }

    _send(frame) {
      if (!this._socket || this._socket.readyState !== 1 || !this._socketId) return false;
      this._socket.send(JSON.stringify(frame));
      return true;
    }

    /** Send a command; resolves with its reply, rejects with a CallingError if refused. */
    _request(command, fields) {
      return new Promise((resolve, reject) => {
        if (!this._send({ type: command, ...fields })) {
          reject(new CallingError("Not connected to Spool.", { code: "NotConnected", command }));
          return;
        }
        const entry = { resolve, reject };
        entry.timer = setTimeout(() => {
          const queue = this._pending.get(command) || [];
          if (queue.includes(entry)) queue.splice(queue.indexOf(entry), 1);
          reject(new CallingError(`No answer to ${command}.`, { code: "Timeout", command }));
        }, REQUEST_TIMEOUT_MS);
        if (!this._pending.has(command)) this._pending.set(command, []);
        this._pending.get(command).push(entry);
      });
    }

    _settle(command, settle) {
      const entry = (this._pending.get(command) || []).shift();
      if (!entry) return false;
      clearTimeout(entry.timer);
      settle(entry);
      return true;
    }

    _failPending(error) {
      for (const [command, queue] of this._pending) {
        for (const entry of queue.splice(0)) {
          clearTimeout(entry.timer);
          entry.reject(new CallingError(error.message, { code: error.code, command }));
        }
      }
    }

    _onMessage(socket, event) {
      if (socket !== this._socket) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this._heardSincePing = true;
      if (frame.type === "hello") {
        this._onHello(socket, frame);
      } else if (frame.type === "call") {
        this._onCallFrame(frame);
      } else if (COMMAND_OF_REPLY[frame.type]) {
        this._settle(COMMAND_OF_REPLY[frame.type], (entry) => entry.resolve(frame));
      } else if (frame.type === "error") {
        this._onError(socket, frame);
      }
      // pong, and frames of other features (chat), need nothing here
    }

    _onError(socket, frame) {
      const error = new CallingError(frame.message || frame.code, { code: frame.code, command: frame.command });
      if (frame.code === "InvalidToken" && frame.command !== "token.renew") {
        socket._refusal = error; // the close (4001) that follows acts on it
        return;
      }
      if (frame.command && this._settle(frame.command, (entry) => entry.reject(error))) return;
      // A refused signal (no reply to match), or an error of the server's own (media server gone).
      this.emit("error", error);
    }

    _onHello(socket, frame) {
      clearTimeout(socket._helloTimer);
      this._selfRawId = frame.identity;
      this._socketId = frame.socketId;
      this._attempt = 0;
      if (!(frame.scopes || []).some((scope) => scope === "voip" || scope === "voip.join")) {
        this.emit("error", new CallingError("This token has no voip scope: it can neither place nor receive calls.", { code: "Forbidden" }));
      }
      this._startPing();
      this._scheduleRenewal();
      this._setConnectionState("Connected");
      if (this._onFirstHello) {
        this._onFirstHello();
        this._onFirstHello = this._onFirstRefusal = null;
      }
    }

    _onClose(socket, event) {
      clearTimeout(socket._helloTimer);
      if (socket !== this._socket) return;
      this._socket = null;
      this._socketId = "";
      clearTimeout(this._timers.ping);
      this._failPending(new CallingError("The connection to Spool closed.", { code: "NotConnected" }));
      // The server ends a leg whose socket goes: so do we.
      for (const call of [...this.calls]) call._end(END_SOCKET_GONE);
      for (const incoming of [...this._incoming.values()]) incoming._onFrame({ event: "stateChanged", state: "Disconnected", callEndReason: END_SOCKET_GONE });
      this._setConnectionState("Disconnected", event.code === CLOSE_UNAUTHORIZED ? "tokenRefused" : "connectionLost");
      if (this._disposed) return;
      if (event.code === CLOSE_UNAUTHORIZED) {
        if (!this._tokens.canRefresh) {
          this._refused(socket._refusal || new CallingError("The token was refused.", { code: "InvalidToken" }));
          return;
        }
        this._tokens.refresh().then(() => this._open(), (error) => this._retry(error));
        return;
      }
      this._retry();
    }

    _retry(error) {
      if (error) this.emit("error", error);
      if (this._disposed) return;
      clearTimeout(this._timers.reconnect);
      this._timers.reconnect = setTimeout(() => this._open(), backoffDelay(this._attempt++));
    }

    _refused(error) {
      if (this._onFirstRefusal) {
        this._onFirstRefusal(error);
        this._onFirstHello = this._onFirstRefusal = null;
        this._disposed = true;
        this._client._agent = null;
        return;
      }
      if (!this._tokens.canRefresh) {
        this._disposed = true;
        this.emit("error", error);
        return;
      }
      this._retry(error);
    }

    _setConnectionState(state, reason) {
      if (this.connectionState === state) return;
      const oldValue = this.connectionState;
      this.connectionState = state;
      this.emit("connectionStateChanged", { oldValue, newValue: state, reason });
    }

    /** A ping every 25 s; a socket that answered nothing since the last one is dead. */
    _startPing() {
      clearTimeout(this._timers.ping);
      this._heardSincePing = true;
      const tick = () => {
        const socket = this._socket;
        if (!socket) return;
        if (!this._heardSincePing) {
          socket.close(4000, "no pong");
          this._onClose(socket, { code: 4000 });
          return;
        }
        this._heardSincePing = false;
        this._send({ type: "ping" });
        this._timers.ping = setTimeout(tick, PING_INTERVAL_MS);
      };
      this._timers.ping = setTimeout(tick, PING_INTERVAL_MS);
    }

    /**
     * Renew the token before it expires and hand it to the open socket (`token.renew`), so
     * calls in progress, whose legs the socket holds, go on. Should the server refuse it, move
     * to a new socket once no call is in progress.
     */
    _scheduleRenewal() {
      clearTimeout(this._timers.renew);
      const at = this._tokens.renewAt;
      if (at === undefined) return;
      this._timers.renew = setTimeout(() => {
        this._tokens
          .refresh()
          .then((token) => this._request("token.renew", { token }))
          .then(
            () => this._scheduleRenewal(),
            (error) => {
              if (error.code === "InvalidToken" || error.code === "Timeout") {
                this._renewPending = true;
                this._renewIfIdle();
              } else {
                this.emit("error", error);
              }
            }
          );
      }, Math.min(Math.max(0, at - Date.now()), 0x7fffffff));
    }

    _renewIfIdle() {
      if (!this._renewPending || this.calls.length || this._incoming.size || !this._socket) return;
      this._renewPending = false;
      const old = this._socket;
      this._socket = null;
      old.onclose = old.onmessage = null;
      old.close(1000);
      clearTimeout(this._timers.ping);
      this._socketId = "";
      this._open();
    }
  }

  function socketUrlOf(options) {
    if (options.socketUrl) return options.socketUrl;
    const base = options.endpoint || (root.location ? root.location.href : "");
    if (!base) throw new TypeError("Give options.socketUrl (no page location to derive it from).");
    const url = new URL("/ws/", base);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.toString();
  }

  /**
   * The entry point: `getDeviceManager()` and `createCallAgent(credential, options)`.
   * A CallClient holds one CallAgent at a time (as in ACS).
   */
  class CallClient {
    constructor(options = {}) {
      this._options = options;
      this._deviceManager = new DeviceManager();
      this._agent = null;
    }

    async getDeviceManager() {
      return this._deviceManager;
    }

    /**
     * @param credential  a token string, `{token, refresh}` (refresh: async () => new token), or
     *                    anything with `getToken()` (an ACS CommunicationTokenCredential)
     * @param options     `socketUrl` (default: /ws/ on the page's host), or `endpoint` (the
     *                    resource's endpoint, whose host has the socket), `displayName`
     */
    async createCallAgent(credential, options = {}) {
      if (this._agent) throw new CallingError("This CallClient has a CallAgent already: dispose it first.", { code: "InvalidState" });
      const agent = new CallAgent(this, new TokenKeeper(credential), options);
      this._agent = agent;
      await agent._connect();
      return agent;
    }
  }

  const SpoolCalling = {
    CallClient,
    CallAgent,
    Call,
    IncomingCall,
    RemoteParticipant,
    RemoteVideoStream,
    DeviceManager,
    LocalVideoStream,
    VideoStreamRenderer,
    CallingError,
    getIdentifierRawId,
  };
  root.SpoolCalling = SpoolCalling;
  if (typeof module === "object" && module.exports) module.exports = SpoolCalling;
})(typeof window !== "undefined" ? window : globalThis);
