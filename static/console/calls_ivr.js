// Try IVR: call the resource's IVR line (an identity whose calls Spool's built-in IVR answers)
// through SpoolCalling (spool-calling.js) and press keys on a keypad. The console's token
// endpoint makes the page's two identities when needed. `window.spoolCall` is the current call.
(() => {
  const root = document.getElementById("try-ivr");
  const callButton = document.getElementById("ivr-call");
  if (!root || !callButton) return;

  const { issueToken, describeState, stateClass, element } = window.SpoolConsoleCalls;
  const $ = (id) => document.getElementById(id);
  const KEYS = { 0: "Num0", 1: "Num1", 2: "Num2", 3: "Num3", 4: "Num4", 5: "Num5", 6: "Num6", 7: "Num7", 8: "Num8", 9: "Num9", "*": "Star", "#": "Pound" };
  const state = { agent: null, line: "", call: null, audioTimer: null };
  window.spoolIvr = state;

  function showError(error) {
    $("ivr-error").textContent = error ? error.message || String(error) : "";
  }

  function log(text) {
    const time = new Date().toLocaleTimeString([], { hour12: false });
    const item = element("li");
    item.append(element("time", "", time), element("span", "", text));
    $("ivr-log").prepend(item);
  }

  /** A token for the caller (and the IVR line's id), then a call agent on it: once per page. */
  async function signIn() {
    if (state.agent) return state.agent;
    const issued = await issueToken(root, {});
    state.line = issued.line;
    $("caller-id").textContent = issued.identity;
    $("line-id").textContent = issued.line;
    const client = new SpoolCalling.CallClient();
    await client.getDeviceManager();
    state.agent = await client.createCallAgent({
      token: issued.token,
      refresh: async () => (await issueToken(root, {})).token,
    });
    state.agent.on("error", showError);
    window.spoolCallAgent = state.agent;
    return state.agent;
  }

  callButton.addEventListener("click", async () => {
    showError(null);
    callButton.disabled = true;
    try {
      const agent = await signIn();
      follow(agent.startCall([{ communicationUserId: state.line }], {}));
      log("Calling the IVR line…");
    } catch (error) {
      showError(error);
      render();
    }
  });

  function follow(call) {
    state.call = call;
    window.spoolCall = call;
    call.on("stateChanged", () => {
      if (call !== state.call) return;
      log(describeState(call));
      render();
    });
    call.on("isMutedChanged", render);
    render();
  }

  function live() {
    return Boolean(state.call) && state.call.state !== "Disconnected";
  }

  function render() {
    const call = state.call;
    const connected = Boolean(call) && call.state === "Connected";
    $("call-state").textContent = describeState(call);
    $("call-state").className = stateClass(call);
    callButton.disabled = live();
    $("hangup").disabled = !live();
    $("mute").disabled = !connected;
    $("mute").textContent = connected && call.isMuted ? "Unmute" : "Mute";
    for (const key of $("keypad").querySelectorAll("button")) key.disabled = !connected;
    if (connected && !state.audioTimer) state.audioTimer = setInterval(showAudio, 1000);
    if (!live()) {
      clearInterval(state.audioTimer);
      state.audioTimer = null;
      $("ivr-audio").textContent = "";
    }
    if (call && call.state === "Disconnected" && call.callEndReason && call.callEndReason.code === 503) {
      showError(new Error("The media plane is not running, so the IVR could not answer."));
    }
  }

  /** What has come from the IVR so far (the bridge's audio), as the call's stats count it. */
  async function showAudio() {
    if (!live()) return;
    const figures = await state.call.getStats().catch(() => null);
    if (figures) $("ivr-audio").textContent = `${Math.round(figures.audioBytesReceived / 1024)} KB of audio received`;
  }

  async function press(key) {
    const call = state.call;
    if (!call || call.state !== "Connected") return;
    log(`You pressed ${key}`);
    try {
      await call.sendDtmf(KEYS[key]);
    } catch (error) {
      showError(error);
    }
  }

  $("keypad").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-key]");
    if (button) press(button.dataset.key);
  });
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || !(event.key in KEYS)) return;
    if (event.target.closest && event.target.closest("input, textarea, select")) return;
    press(event.key);
  });
  $("hangup").addEventListener("click", () => {
    if (state.call) state.call.hangUp().catch(showError);
  });
  $("mute").addEventListener("click", () => {
    const call = state.call;
    if (call) (call.isMuted ? call.unmute() : call.mute()).catch(showError);
  });
})();
