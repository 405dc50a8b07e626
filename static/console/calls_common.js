// What the console's calling pages (Try calling, Group call) share: tokens issued by the
// console, the call agent (SpoolCalling, spool-calling.js), device pickers and call state text.
window.SpoolConsoleCalls = (() => {
  const END_REASONS = {
    0: "ended normally",
    403: "not allowed",
    404: "not found",
    410: "connection lost",
    487: "cancelled",
    603: "declined",
  };

  // --- Tokens and the call agent ---------------------------------------------------------------
  async function issueToken(root, body) {
    const response = await fetch(root.dataset.tokenUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": root.dataset.csrf },
      body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error((data.error && data.error.message) || `HTTP ${response.status}`);
    return data;
  }

  /** Sign in as `choice` (a raw id, or "new" or "" for a new identity): a voip token, and a call agent on it. */
  async function connect(root, choice) {
    const id = (choice || "").trim();
    const issued = await issueToken(root, id && id !== "new" ? { identity: id } : { create: true });
    const client = new SpoolCalling.CallClient();
    const devices = await client.getDeviceManager();
    const agent = await client.createCallAgent({
      token: issued.token,
      refresh: async () => (await issueToken(root, { identity: issued.identity })).token,
    });
    return { client, devices, agent, identity: issued.identity };
  }

  // --- Devices ---------------------------------------------------------------------------------
  /**
   * Fill the camera, microphone and speaker selects (after asking for permission, which the
   * labels need) and keep them current. `onCamera(device)` hears of a new camera choice.
   */
  async function setUpDevices(devices, selects, onCamera) {
    await devices.askDevicePermission({ audio: true, video: true });
    const state = { cameras: [], microphones: [], speakers: [] };

    function fill(select, list, selectedId) {
      const current = selectedId || select.value;
      select.replaceChildren(
        ...list.map((device) => {
          const option = document.createElement("option");
          option.value = device.id;
          option.textContent = device.name;
          return option;
        })
      );
      if (list.some((device) => device.id === current)) select.value = current;
      select.disabled = list.length === 0;
    }

    async function refresh() {
      [state.cameras, state.microphones, state.speakers] = await Promise.all([
        devices.getCameras(),
        devices.getMicrophones(),
        devices.isSpeakerSelectionAvailable ? devices.getSpeakers() : [],
      ]);
      fill(selects.camera, state.cameras);
      fill(selects.microphone, state.microphones, devices.selectedMicrophone && devices.selectedMicrophone.id);
      fill(selects.speaker, state.speakers, devices.selectedSpeaker && devices.selectedSpeaker.id);
      if (selects.speakerField) selects.speakerField.hidden = state.speakers.length === 0;
    }

    selects.camera.addEventListener("change", () => onCamera(camera()));
    selects.microphone.addEventListener("change", () => {
      devices.selectMicrophone(state.microphones.find((d) => d.id === selects.microphone.value));
    });
    selects.speaker.addEventListener("change", () => {
      devices.selectSpeaker(state.speakers.find((d) => d.id === selects.speaker.value));
    });
    devices.on("videoDevicesUpdated", refresh);
    devices.on("audioDevicesUpdated", refresh);
    await refresh();

    function camera() {
      return state.cameras.find((d) => d.id === selects.camera.value) || state.cameras[0];
    }
    return { camera };
  }

  // --- Text --------------------------------------------------------------------------------------
  /** A call's state as the ACS SDK names it, with the end code once it is over. */
  function describeState(call) {
    if (!call) return "No call";
    if (call.state !== "Disconnected") return call.state;
    const reason = call.callEndReason || { code: 0 };
    const meaning = END_REASONS[reason.code];
    return `Disconnected · code ${reason.code}${meaning ? ` (${meaning})` : ""}`;
  }

  function stateClass(call) {
    if (!call || call.state === "None") return "state";
    if (call.state === "Connected") return "state active";
    if (call.state === "Disconnected") return call.callEndReason && call.callEndReason.code ? "state failed" : "state";
    return "state pending";
  }

  const rawIdOf = (identifier) => (identifier ? SpoolCalling.getIdentifierRawId(identifier) : "");

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  return { issueToken, connect, setUpDevices, describeState, stateClass, rawIdOf, element };
})();
