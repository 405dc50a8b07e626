// Group call: join the call of a group id or a room as an identity of the resource, through
// SpoolCalling (spool-calling.js), with a video tile per participant. `window.spoolCall` is the
// current call (for tests and the curious).
(() => {
  const root = document.getElementById("group-calls");
  const form = document.getElementById("join-form");
  if (!root || !form) return;

  const { connect, setUpDevices, describeState, stateClass, rawIdOf, element } = window.SpoolConsoleCalls;
  const $ = (id) => document.getElementById(id);
  const state = { agent: null, picker: null, call: null, tiles: new Map(), localView: null };
  window.spoolCalls = state;

  function showError(target, error) {
    $(target).textContent = error ? error.message || String(error) : "";
  }

  const shortId = (rawId) => (rawId.length > 18 ? `…${rawId.slice(-12)}` : rawId);

  // A group id from the address (?group=...) is filled in: share the page's link to invite.
  const fromAddress = new URLSearchParams(location.search).get("group");
  form.elements.group_id.value = fromAddress || crypto.randomUUID();
  $("new-group").addEventListener("click", () => {
    form.elements.group_id.value = crypto.randomUUID();
    form.elements.target.value = "group";
  });
  form.elements.group_id.addEventListener("input", () => (form.elements.target.value = "group"));
  form.elements.room_id.addEventListener("input", () => (form.elements.target.value = "room"));

  // --- Joining ---------------------------------------------------------------------------------
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button.primary");
    button.disabled = true;
    showError("join-error", null);
    try {
      if (!state.agent) await signIn(form.elements.identity.value);
      const byRoom = form.elements.target.value === "room";
      const id = (byRoom ? form.elements.room_id : form.elements.group_id).value.trim();
      if (!id) throw new Error(byRoom ? "Give a room id." : "Give a group id.");
      const camera = form.elements.video.checked && state.picker.camera();
      const options = {
        videoOptions: { localVideoStreams: camera ? [new SpoolCalling.LocalVideoStream(camera)] : [] },
        audioOptions: { muted: form.elements.muted.checked },
      };
      follow(state.agent.join(byRoom ? { roomId: id } : { groupId: id }, options), byRoom, id);
    } catch (error) {
      showError("join-error", error);
    } finally {
      button.disabled = false;
    }
  });

  async function signIn(choice) {
    const { agent, devices, identity } = await connect(root, choice);
    state.agent = agent;
    window.spoolCallAgent = agent;
    form.elements.identity.value = identity;
    form.elements.identity.disabled = true; // the socket is this identity's from now on
    $("my-id").textContent = identity;
    agent.on("error", (error) => showError(state.call ? "call-error" : "join-error", error));
    state.picker = await setUpDevices(
      devices,
      {
        camera: $("camera-select"),
        microphone: $("microphone-select"),
        speaker: $("speaker-select"),
        speakerField: $("speaker-field"),
      },
      switchCamera
    );
  }

  // --- The call --------------------------------------------------------------------------------
  // Dial a phone into the call (`call.addParticipant`): it shows as a tile when it answers.
  const dialOut = document.getElementById("dial-out");
  if (dialOut) {
    dialOut.addEventListener("submit", (event) => {
      event.preventDefault();
      showError("call-error", null);
      if (!state.call) return;
      try {
        const number = document.getElementById("dial-number").value.trim();
        const callerId = document.getElementById("dial-caller-id").value;
        state.call.addParticipant({ phoneNumber: number }, { alternateCallerId: { phoneNumber: callerId } });
      } catch (error) {
        showError("call-error", error);
      }
    });
  }

  function follow(call, byRoom, id) {
    state.call = call;
    window.spoolCall = call;
    $("group-title").textContent = byRoom ? "Room call" : "Group call";
    $("group-id").value = id;
    $("group-id-label").textContent = byRoom ? "Room id" : "Group id";
    $("group-id-hint").hidden = byRoom;
    $("in-call").hidden = false;
    $("group-join").hidden = true;
    $("group-app").hidden = false;
    showError("call-error", null);
    for (const rawId of [...state.tiles.keys()]) removeTile(rawId);
    call.on("stateChanged", () => {
      render();
      if (call.state === "Disconnected") ended(call);
    });
    call.on("roleChanged", render);
    call.on("isMutedChanged", render);
    call.on("isLocalVideoStartedChanged", () => {
      render();
      renderLocalVideo().catch((error) => showError("call-error", error));
    });
    call.on("remoteParticipantsUpdated", ({ added, removed }) => {
      added.forEach(addTile);
      removed.forEach((participant) => removeTile(rawIdOf(participant.identifier)));
      render();
    });
    call.remoteParticipants.forEach(addTile);
    render();
    renderLocalVideo().catch((error) => showError("call-error", error));
  }

  function ended(call) {
    if (state.call !== call) return;
    for (const rawId of [...state.tiles.keys()]) removeTile(rawId);
    renderLocalVideo().catch(() => {});
    $("in-call").hidden = true; // the header keeps the end state
    $("group-join").hidden = false;
    const reason = call.callEndReason || {};
    if (reason.code) showError("join-error", new Error(`${describeState(call)}${reason.message ? `: ${reason.message}` : ""}`));
  }

  function render() {
    const call = state.call;
    if (!call) return;
    const live = call.state !== "Disconnected";
    $("call-state").textContent = describeState(call);
    $("call-state").className = stateClass(call);
    $("call-role").textContent = call.role && call.role !== "Unknown" ? call.role : "";
    $("call-role").hidden = !$("call-role").textContent;
    const count = call.totalParticipantCount;
    $("participant-count").textContent = live ? `${count} participant${count === 1 ? "" : "s"}` : "";
    const canSend = live && call.role !== "Consumer";
    $("mute").disabled = !canSend;
    $("camera").disabled = !canSend;
    $("leave").disabled = !live;
    $("end-all").disabled = !live || (call.info.roomId !== undefined && call.role !== "Presenter");
    $("mute").textContent = call.isMuted ? "Unmute" : "Mute";
    $("camera").textContent = call.isLocalVideoStarted ? "Stop camera" : "Start camera";
    $("local-tile").querySelector(".muted-badge").hidden = !(live && call.isMuted);
    for (const tile of state.tiles.values()) renderTile(tile);
  }

  // --- Tiles -----------------------------------------------------------------------------------
  function addTile(participant) {
    const rawId = rawIdOf(participant.identifier);
    if (state.tiles.has(rawId)) return;
    const node = element("div", "call-tile remote");
    node.dataset.rawId = rawId;
    const box = element("div", "video-box");
    // A phone (4:+...) has no camera: its tile says so, and its state while it rings.
    const placeholder = element("div", "video-placeholder", rawId.startsWith("4:") ? `Phone · ${participant.state}` : "Camera off");
    if (rawId.startsWith("4:")) participant.on("stateChanged", () => { placeholder.textContent = `Phone · ${participant.state}`; });
    box.append(placeholder);
    const name = element("span", "tile-name mono", shortId(rawId));
    name.title = rawId;
    const muted = element("span", "badge muted-badge", "Muted");
    node.append(box, name, muted);
    $("tiles").append(node);
    const tile = { participant, node, box, placeholder, muted, renderer: null, view: null, stream: null };
    state.tiles.set(rawId, tile);
    participant.on("isMutedChanged", () => renderTile(tile));
    participant.on("stateChanged", () => renderTile(tile));
    participant.on("videoStreamsUpdated", ({ added }) => {
      added.forEach((stream) => stream.on("isAvailableChanged", () => renderTile(tile)));
      renderTile(tile);
    });
    participant.videoStreams.forEach((stream) => stream.on("isAvailableChanged", () => renderTile(tile)));
    renderTile(tile);
  }

  function renderTile(tile) {
    const { participant } = tile;
    tile.muted.hidden = !participant.isMuted;
    tile.node.classList.toggle("connecting", participant.state !== "Connected");
    const stream = participant.videoStreams.find((s) => s.isAvailable) || null;
    if (stream === tile.stream) return;
    disposeView(tile);
    tile.stream = stream;
    tile.placeholder.hidden = Boolean(stream);
    if (!stream) return;
    tile.renderer = new SpoolCalling.VideoStreamRenderer(stream);
    tile.renderer.createView({ scalingMode: "Crop" }).then(
      (view) => {
        if (tile.stream !== stream) return view.dispose();
        tile.view = view;
        tile.box.append(view.target);
      },
      (error) => showError("call-error", error)
    );
  }

  function disposeView(tile) {
    if (tile.renderer) tile.renderer.dispose();
    tile.renderer = tile.view = tile.stream = null;
    tile.placeholder.hidden = false;
  }

  function removeTile(rawId) {
    const tile = state.tiles.get(rawId);
    if (!tile) return;
    disposeView(tile);
    tile.node.remove();
    state.tiles.delete(rawId);
  }

  async function renderLocalVideo() {
    const call = state.call;
    const box = $("local-tile").querySelector(".video-box");
    const placeholder = box.querySelector(".video-placeholder");
    if (state.localView) state.localView.dispose();
    state.localView = null;
    const stream = call && call.state !== "Disconnected" ? call.localVideoStreams[0] : null;
    placeholder.hidden = Boolean(stream);
    if (!stream) return;
    const view = await new SpoolCalling.VideoStreamRenderer(stream).createView({ isMirrored: true });
    if (state.call !== call || call.localVideoStreams[0] !== stream) return view.dispose();
    state.localView = view;
    box.append(view.target);
  }

  // --- Controls --------------------------------------------------------------------------------
  $("mute").addEventListener("click", () => {
    const call = state.call;
    if (call) (call.isMuted ? call.unmute() : call.mute()).catch((e) => showError("call-error", e));
  });

  $("camera").addEventListener("click", async () => {
    const call = state.call;
    if (!call) return;
    try {
      if (call.isLocalVideoStarted) await call.stopVideo(call.localVideoStreams[0]);
      else {
        const camera = state.picker.camera();
        if (!camera) throw new Error("No camera found.");
        await call.startVideo(new SpoolCalling.LocalVideoStream(camera));
      }
    } catch (error) {
      showError("call-error", error);
    }
  });

  $("leave").addEventListener("click", () => {
    if (state.call) state.call.hangUp().catch((e) => showError("call-error", e));
  });
  $("end-all").addEventListener("click", () => {
    if (state.call && window.confirm("End the call for everyone in it?")) {
      state.call.hangUp({ forEveryone: true }).catch((e) => showError("call-error", e));
    }
  });

  async function switchCamera(camera) {
    const call = state.call;
    if (!camera || !call || !call.isLocalVideoStarted) return;
    try {
      await call.localVideoStreams[0].switchSource(camera);
    } catch (error) {
      showError("call-error", error);
    }
  }
})();
