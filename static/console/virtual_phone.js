// Calls > Virtual phones: this page is a phone outside the deployment. It asks the console for a
// ticket for its number, opens /ws/virtual-phone/ (Spool registers the phone at its SIP edge),
// and is the WebRTC side of the phone's calls: its SDPs go over the socket, its audio to Janus.
// `window.spoolPhone` holds the state (tests read it).
(() => {
  const root = document.getElementById("virtual-phone");
  const onButton = document.getElementById("phone-on");
  if (!root || !onButton) return;

  const $ = (id) => document.getElementById(id);
  const phone = { socket: null, pc: null, stream: null, tone: null, state: "off", incoming: null, heard: 0 };
  window.spoolPhone = phone;

  function setState(state, text) {
    phone.state = state;
    $("phone-state").textContent = text;
    $("phone-state").className = `state ${state}`;
    const inCall = ["calling", "ringing", "connected"].includes(state);
    $("phone-call").disabled = state !== "ready";
    $("phone-hangup").disabled = !inCall;
    $("phone-answer").hidden = state !== "ringing";
    $("phone-decline").hidden = state !== "ringing";
    onButton.disabled = state !== "off";
    for (const key of document.querySelectorAll("#keypad button")) key.disabled = state !== "connected";
  }

  function showError(message) {
    $("phone-error").textContent = message || "";
  }

  function log(text) {
    const item = document.createElement("li");
    const time = document.createElement("time");
    time.textContent = new Date().toLocaleTimeString([], { hour12: false });
    const span = document.createElement("span");
    span.textContent = text;
    item.append(time, span);
    $("phone-log").prepend(item);
  }

  async function ticket(number) {
    const response = await fetch(root.dataset.ticketUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": root.dataset.csrf },
      body: JSON.stringify({ number }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ? body.error.message : `HTTP ${response.status}`);
    return body;
  }

  onButton.addEventListener("click", async () => {
    showError("");
    onButton.disabled = true;
    try {
      const issued = await ticket($("phone-number").value.trim());
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      const socket = new WebSocket(`${scheme}://${location.host}${issued.socket}?ticket=${encodeURIComponent(issued.ticket)}`);
      phone.socket = socket;
      socket.onmessage = (message) => onFrame(JSON.parse(message.data));
      socket.onclose = () => {
        hangUpLocally();
        setState("off", "Off");
        log("The phone is off.");
      };
      setState("connecting", "Switching on…");
    } catch (error) {
      showError(error.message);
      setState("off", "Off");
    }
  });

  async function onFrame(frame) {
    if (frame.type === "ready") {
      $("phone-number").value = frame.number;
      $("phone-number").disabled = true;
      setState("ready", `Ready: ${frame.number}`);
      log(`${frame.number} is on the network.`);
    } else if (frame.type === "incoming") {
      phone.incoming = frame;
      setState("ringing", `Ringing: ${frame.from}`);
      log(`${frame.from} is calling.`);
    } else if (frame.type === "ringing") {
      log("Ringing at the far end…");
    } else if (frame.type === "answered") {
      if (frame.sdp && phone.pc && phone.pc.signalingState === "have-local-offer") {
        await phone.pc.setRemoteDescription({ type: "answer", sdp: frame.sdp });
      }
      if (phone.state !== "connected") {
        setState("connected", "In a call");
        log("Answered.");
      }
    } else if (frame.type === "ended") {
      hangUpLocally();
      setState("ready", `Ready: ${$("phone-number").value}`);
      log(`The call ended (${frame.code}${frame.reason ? " " + frame.reason : ""}).`);
    } else if (frame.type === "error") {
      showError(frame.message);
    }
  }

  /** What the phone says: a 440 Hz tone, or the microphone. */
  async function localStream() {
    if ($("phone-source").value === "microphone") {
      return navigator.mediaDevices.getUserMedia({ audio: true });
    }
    const context = new AudioContext();
    const oscillator = context.createOscillator();
    oscillator.frequency.value = 440;
    const gain = context.createGain();
    gain.gain.value = 0.3;
    const destination = context.createMediaStreamDestination();
    oscillator.connect(gain).connect(destination);
    oscillator.start();
    phone.tone = context;
    return destination.stream;
  }

  async function newPeer() {
    const pc = new RTCPeerConnection({ iceServers: [] });
    phone.pc = pc;
    phone.stream = await localStream();
    for (const track of phone.stream.getTracks()) pc.addTrack(track, phone.stream);
    pc.ontrack = (event) => {
      $("phone-audio").srcObject = event.streams[0] || new MediaStream([event.track]);
    };
    return pc;
  }

  /** Janus takes whole SDPs from the SIP side: wait for this side's candidates. */
  function gathered(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => pc.iceGatheringState === "complete" && resolve();
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 3000);
    });
  }

  $("phone-call").addEventListener("click", async () => {
    showError("");
    const to = $("phone-dial").value.trim();
    try {
      const pc = await newPeer();
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      phone.socket.send(JSON.stringify({ type: "call", to, sdp: pc.localDescription.sdp }));
      setState("calling", `Calling ${to}…`);
      log(`Calling ${to}.`);
    } catch (error) {
      showError(error.message);
      hangUpLocally();
    }
  });

  $("phone-answer").addEventListener("click", async () => {
    const incoming = phone.incoming;
    if (!incoming) return;
    try {
      const pc = await newPeer();
      await pc.setRemoteDescription({ type: "offer", sdp: incoming.sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      await gathered(pc);
      phone.socket.send(JSON.stringify({ type: "accept", sdp: pc.localDescription.sdp }));
      setState("connected", "In a call");
      log("You answered.");
    } catch (error) {
      showError(error.message);
    }
  });

  $("phone-decline").addEventListener("click", () => {
    phone.socket.send(JSON.stringify({ type: "decline" }));
    phone.incoming = null;
  });

  $("phone-hangup").addEventListener("click", () => {
    phone.socket.send(JSON.stringify({ type: "hangup" }));
  });

  function sendKey(key) {
    if (phone.state !== "connected") return;
    phone.socket.send(JSON.stringify({ type: "dtmf", tone: key }));
    log(`Key ${key}`);
  }

  for (const button of document.querySelectorAll("#keypad button")) {
    button.addEventListener("click", () => sendKey(button.dataset.key));
  }
  document.addEventListener("keydown", (event) => {
    if (/^[0-9*#]$/.test(event.key) && event.target.tagName !== "INPUT") sendKey(event.key);
  });

  function hangUpLocally() {
    phone.incoming = null;
    if (phone.pc) phone.pc.close();
    phone.pc = null;
    if (phone.stream) for (const track of phone.stream.getTracks()) track.stop();
    phone.stream = null;
    if (phone.tone) phone.tone.close();
    phone.tone = null;
  }

  setState("off", "Off");
})();
