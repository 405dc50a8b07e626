// Try calling: a 1:1 call between identities of the resource, or to a phone, through SpoolCalling
// (spool-calling.js). `window.spoolCall` is the current call (for tests and the curious).
(() => {
  const root = document.getElementById("try-calls");
  const connectForm = document.getElementById("call-connect");
  if (!root || !connectForm) return;

  const { connect, setUpDevices, describeState, stateClass, rawIdOf } = window.SpoolConsoleCalls;
  const $ = (id) => document.getElementById(id);
  const state = { agent: null, devices: null, picker: null, call: null, incoming: null, camera: null };
  window.spoolCalls = state;

  function showError(error) {
    $("call-error").textContent = error ? error.message || String(error) : "";
  }

  // --- Sign in ---------------------------------------------------------------------------------
  connectForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = connectForm.querySelector("button");
    button.disabled = true;
    $("signin-error").textContent = "";
    try {
      const { agent, devices, identity } = await connect(root, connectForm.elements.identity.value);
      state.agent = agent;
      state.devices = devices;
      window.spoolCallAgent = agent;
      $("my-id").value = identity;
      $("call-signin").hidden = true;
      $("call-app").hidden = false;
      setStatus(agent);
      agent.on("connectionStateChanged", () => setStatus(agent));
      agent.on("incomingCall", ({ incomingCall }) => ring(incomingCall));
      agent.on("error", showError);
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
    } catch (error) {
      $("signin-error").textContent = error.message;
      button.disabled = false;
    }
  });

  function setStatus(agent) {
    const live = agent.connectionState === "Connected";
    $("agent-status").textContent = live ? "Ready for calls" : "Reconnecting…";
    $("agent-status").className = live ? "state active" : "state pending";
  }

  function newCameraStream() {
    const camera = state.picker && state.picker.camera();
    return camera ? new SpoolCalling.LocalVideoStream(camera) : null;
  }

  function callOptions(withVideo) {
    const camera = withVideo ? newCameraStream() : null;
    return { videoOptions: { localVideoStreams: camera ? [camera] : [] } };
  }

  // --- Placing a call ----------------------------------------------------------------------------
  $("place-call").addEventListener("submit", (event) => {
    event.preventDefault();
    showError(null);
    const callee = event.target.elements.callee.value.trim();
    const withVideo = Boolean(event.submitter && event.submitter.value);
    if (!callee) return;
    if (state.call && state.call.state !== "Disconnected") {
      showError(new Error("Hang up the current call first."));
      return;
    }
    try {
      if (/^\+\d+$/.test(callee)) {
        // A phone: through the resource's SIP routes (or the loopback carrier), audio only,
        // shown as one of the resource's numbers.
        const callerId = event.target.elements.caller_id.value;
        const options = { ...callOptions(false), alternateCallerId: { phoneNumber: callerId } };
        follow(state.agent.startCall([{ phoneNumber: callee }], options));
      } else {
        follow(state.agent.startCall([{ communicationUserId: callee }], callOptions(withVideo)));
      }
    } catch (error) {
      showError(error);
    }
  });

  // --- Incoming calls ----------------------------------------------------------------------------
  function ring(incomingCall) {
    state.incoming = incomingCall;
    $("incoming-kind").textContent = incomingCall.video ? "Incoming video call" : "Incoming call";
    $("incoming-from").textContent = `from ${rawIdOf(incomingCall.callerInfo.identifier)}`;
    $("incoming").hidden = false;
    incomingCall.on("callEnded", () => {
      if (state.incoming === incomingCall) hideIncoming();
    });
  }

  function hideIncoming() {
    state.incoming = null;
    $("incoming").hidden = true;
  }

  async function answer(withVideo) {
    const incoming = state.incoming;
    if (!incoming) return;
    hideIncoming();
    showError(null);
    try {
      if (state.call && state.call.state !== "Disconnected") await state.call.hangUp();
      follow(await incoming.accept(callOptions(withVideo)));
    } catch (error) {
      showError(error);
    }
  }

  $("accept-video").addEventListener("click", () => answer(true));
  $("accept-audio").addEventListener("click", () => answer(false));
  $("decline").addEventListener("click", () => {
    const incoming = state.incoming;
    hideIncoming();
    if (incoming) incoming.reject().catch(showError);
  });

  // --- The call --------------------------------------------------------------------------------
  function follow(call) {
    state.call = call;
    window.spoolCall = call;
    call.on("stateChanged", () => {
      render();
      if (call.state === "Disconnected") showLocalVideo().catch(showError);
    });
    call.on("isMutedChanged", render);
    call.on("isLocalVideoStartedChanged", () => {
      render();
      showLocalVideo().catch(showError);
    });
    call.on("remoteParticipantsUpdated", ({ added }) => {
      added.forEach(watchParticipant);
      render();
    });
    call.remoteParticipants.forEach(watchParticipant);
    render();
    showLocalVideo().catch(showError);
  }

  function watchParticipant(participant) {
    participant.on("isMutedChanged", render);
    participant.on("stateChanged", render);
    participant.on("videoStreamsUpdated", ({ added }) => {
      added.forEach((stream) => stream.on("isAvailableChanged", render));
      render();
    });
    participant.videoStreams.forEach((stream) => stream.on("isAvailableChanged", render));
  }

  function render() {
    const call = state.call;
    const live = Boolean(call) && call.state !== "Disconnected";
    $("call-state").textContent = describeState(call);
    $("call-state").className = stateClass(call);
    const remote = call ? call.remoteParticipants[0] : null;
    $("call-peer").textContent = remote ? `with ${rawIdOf(remote.identifier)}` : "";
    $("mute").disabled = !live;
    $("camera").disabled = !live;
    $("hangup").disabled = !live;
    $("mute").textContent = live && call.isMuted ? "Unmute" : "Mute";
    $("camera").textContent = live && call.isLocalVideoStarted ? "Stop camera" : "Start camera";
    $("local-muted").hidden = !(live && call.isMuted);
    $("remote-muted").hidden = !(live && remote && remote.isMuted);
    const video = remote && remote.videoStreams[0];
    const showRemote = live && Boolean(video && video.isAvailable);
    const remoteVideo = $("remote-video");
    if (showRemote && remoteVideo.srcObject !== remote.mediaStream) {
      remoteVideo.srcObject = remote.mediaStream; // muted: the client plays the audio itself
      remoteVideo.play().catch(() => {});
    }
    if (!live) remoteVideo.srcObject = null;
    remoteVideo.hidden = !showRemote;
    $("remote-placeholder").hidden = showRemote;
    $("remote-placeholder").textContent = live && remote ? (remote.state === "Connected" ? "No video" : `${remote.state}…`) : "No call";
  }

  async function showLocalVideo() {
    const call = state.call;
    const stream = call && call.state !== "Disconnected" ? call.localVideoStreams[0] : null;
    const video = $("local-video");
    video.srcObject = stream ? await stream.getMediaStream() : null;
    if (stream) video.play().catch(() => {});
    video.hidden = !stream;
    $("local-placeholder").hidden = Boolean(stream);
  }

  $("mute").addEventListener("click", () => {
    const call = state.call;
    if (call) (call.isMuted ? call.unmute() : call.mute()).catch(showError);
  });

  $("camera").addEventListener("click", async () => {
    const call = state.call;
    if (!call) return;
    try {
      if (call.isLocalVideoStarted) await call.stopVideo(call.localVideoStreams[0]);
      else {
        const camera = newCameraStream();
        if (!camera) throw new Error("No camera found.");
        await call.startVideo(camera);
      }
    } catch (error) {
      showError(error);
    }
  });

  $("hangup").addEventListener("click", () => {
    if (state.call) state.call.hangUp().catch(showError);
  });

  async function switchCamera(camera) {
    const call = state.call;
    if (!camera || !call || !call.isLocalVideoStarted) return;
    try {
      await call.localVideoStreams[0].switchSource(camera);
      await showLocalVideo();
    } catch (error) {
      showError(error);
    }
  }
})();
