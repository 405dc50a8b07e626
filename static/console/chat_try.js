// Try chat: a live chat between identities of the resource, through SpoolChat (spool-chat.js).
(() => {
  const root = document.getElementById("try-chat");
  const connectForm = document.getElementById("chat-connect");
  if (!root || !connectForm) return;

  const TYPING_SHOWN_MS = 9000; // a little more than the 8 s between two typing notifications
  const $ = (id) => document.getElementById(id);
  const state = {
    client: null,
    me: { id: "", name: "" },
    threads: new Map(), // id -> {id, topic, deleted, unread, activeAt}
    current: null, // the open thread: {id, client, messages: Map, names: Map, seenUpTo, receiptSent}
    typing: new Map(), // raw id -> {name, until}
    knownNames: new Map(), // raw id -> a display name seen on its messages or typing
  };
  window.tryChat = state; // for tests and the curious (the console is a developer tool)

  // --- Tokens: issued by the console for the signed-in portal user -----------------------------
  async function issueToken(body) {
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

  // --- Helpers ---------------------------------------------------------------------------------
  const rawId = (identifier) => (identifier ? SpoolChat.getIdentifierRawId(identifier) : "");
  const shortId = (id) => (id ? `…${id.slice(-6)}` : "someone");
  const time = (date) => (date ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "");

  function nameOf(id, fallback) {
    if (id === state.me.id) return state.me.name;
    const participantName = state.current && state.current.names.get(id);
    return fallback || participantName || state.knownNames.get(id) || shortId(id);
  }

  // Participants added without a display name are known by the name on their messages.
  function learnName(id, name) {
    if (!name || id === state.me.id || state.knownNames.get(id) === name) return;
    state.knownNames.set(id, name);
    if (state.current && state.current.participants) renderParticipants();
  }

  function showError(error) {
    $("chat-error").textContent = error ? error.message || String(error) : "";
  }

  // Participants the server did not add (an unknown raw id, another resource's identity).
  function showInvalid(invalidParticipants) {
    showError(invalidParticipants ? new Error(invalidParticipants.map((p) => p.message).join(" ")) : null);
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // --- Sign in ---------------------------------------------------------------------------------
  connectForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = connectForm.querySelector("button");
    button.disabled = true;
    $("signin-error").textContent = "";
    try {
      const choice = connectForm.elements.identity.value.trim() || "new"; // empty: a new identity
      const issued = await issueToken(choice === "new" ? { create: true } : { identity: choice });
      const name = connectForm.elements.display_name.value.trim();
      start(issued, name || `User ${issued.identity.slice(-4)}`);
    } catch (error) {
      $("signin-error").textContent = error.message;
      button.disabled = false;
    }
  });

  async function start(issued, name) {
    state.me = { id: issued.identity, name };
    $("my-name").textContent = name;
    $("my-id").value = issued.identity;
    $("chat-signin").hidden = true;
    $("chat-app").hidden = false;
    const client = new SpoolChat.ChatClient(root.dataset.endpoint, {
      token: issued.token,
      refresh: async () => (await issueToken({ identity: state.me.id })).token,
    });
    state.client = client;
    client.on("realtimeNotificationConnected", () => setStatus("Live", "active"));
    client.on("realtimeNotificationDisconnected", () => setStatus("Reconnecting…", "pending"));
    client.on("resyncRequired", () => resync());
    client.on("error", showError);
    client.on("chatMessageReceived", onMessage);
    client.on("chatMessageEdited", onMessageEdited);
    client.on("chatMessageDeleted", onMessageDeleted);
    client.on("typingIndicatorReceived", onTyping);
    client.on("readReceiptReceived", onReadReceipt);
    client.on("chatThreadCreated", (e) =>
      upsertThread({ id: e.threadId, topic: e.properties.topic, activeAt: e.createdOn })
    );
    client.on("chatThreadPropertiesUpdated", (e) => {
      upsertThread({ id: e.threadId, topic: e.properties.topic });
      if (isOpen(e.threadId)) {
        const by = nameOf(rawId(e.updatedBy.id), e.updatedBy.displayName);
        addSystemLine(`${by} changed the topic to “${e.properties.topic}”`);
      }
    });
    client.on("chatThreadDeleted", (e) => {
      upsertThread({ id: e.threadId, deleted: true });
      if (isOpen(e.threadId)) closedThread("This thread was deleted.");
    });
    client.on("participantsAdded", onParticipantsAdded);
    client.on("participantsRemoved", onParticipantsRemoved);
    await client.startRealtimeNotifications();
    await loadThreads().catch(showError);
  }

  function setStatus(text, kind) {
    const status = $("chat-status");
    status.textContent = text;
    status.className = `state ${kind}`;
  }

  async function resync() {
    await loadThreads().catch(showError);
    if (state.current) await openThread(state.current.id).catch(showError);
  }

  // --- Threads ---------------------------------------------------------------------------------
  async function loadThreads() {
    const threads = [];
    for await (const thread of state.client.listChatThreads()) threads.push(thread);
    state.threads.clear();
    for (const thread of threads) {
      state.threads.set(thread.id, {
        id: thread.id,
        topic: thread.topic,
        deleted: Boolean(thread.deletedOn),
        unread: false,
        activeAt: thread.lastMessageReceivedOn || new Date(0),
      });
    }
    renderThreads();
  }

  function upsertThread({ id, ...changes }) {
    const thread = state.threads.get(id) || { id, topic: "", unread: false, activeAt: new Date() };
    for (const [key, value] of Object.entries(changes)) if (value !== undefined) thread[key] = value;
    state.threads.set(id, thread);
    renderThreads();
  }

  function renderThreads() {
    const list = $("thread-list");
    list.replaceChildren();
    const threads = [...state.threads.values()].sort((a, b) => b.activeAt - a.activeAt);
    for (const thread of threads) {
      const item = element("li", "thread");
      item.classList.toggle("active", isOpen(thread.id));
      item.classList.toggle("deleted", Boolean(thread.deleted));
      item.dataset.threadId = thread.id;
      const link = element("button", "link", thread.topic || "(no topic)");
      link.type = "button";
      link.addEventListener("click", () => openThread(thread.id).catch(showError));
      item.append(link);
      if (thread.unread) item.append(element("span", "unread", "new"));
      if (thread.deleted) item.append(element("span", "state failed", "deleted"));
      else if (thread.left) item.append(element("span", "state", "left"));
      list.append(item);
    }
    $("no-threads").hidden = threads.length > 0;
  }

  $("new-thread").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const other = form.elements.participant.value.trim();
    const participants = [{ id: { communicationUserId: state.me.id }, displayName: state.me.name }];
    if (other) participants.push({ id: { communicationUserId: other } });
    try {
      const topic = form.elements.topic.value.trim();
      const { chatThread, invalidParticipants } = await state.client.createChatThread({ topic }, { participants });
      showInvalid(invalidParticipants);
      form.reset();
      upsertThread({ id: chatThread.id, topic: chatThread.topic, activeAt: chatThread.createdOn });
      await openThread(chatThread.id);
    } catch (error) {
      showError(error);
    }
  });

  // --- One thread ------------------------------------------------------------------------------
  const isOpen = (threadId) => state.current !== null && state.current.id === threadId;

  async function openThread(threadId) {
    const threadClient = state.client.getChatThreadClient(threadId);
    const current = {
      id: threadId,
      client: threadClient,
      messages: new Map(),
      names: new Map(), // raw id -> display name, from the participant list
      participants: null,
      seenUpTo: 0, // the latest message id another participant has read
      receiptSent: 0, // the latest message id this window sent a read receipt for
    };
    state.current = current;
    state.typing.clear();
    upsertThread({ id: threadId, unread: false });
    $("no-thread").hidden = true;
    $("thread-open").hidden = false;
    $("composer").querySelector("input").disabled = false;
    $("messages").replaceChildren();
    renderTyping();
    const [properties, participants, newest, receipts] = await Promise.all([
      threadClient.getProperties(),
      collect(threadClient.listParticipants()),
      threadClient.listMessages({ maxPageSize: 50 }).byPage().next(),
      collect(threadClient.listReadReceipts()),
    ]);
    if (!isOpen(threadId) || state.current !== current) return; // another thread was opened meanwhile
    $("thread-topic").textContent = properties.topic;
    setParticipants(participants);
    for (const message of (newest.value || []).reverse()) {
      current.messages.set(message.id, message);
      learnName(rawId(message.sender), message.senderDisplayName);
    }
    for (const receipt of receipts) noteReceipt(rawId(receipt.sender), receipt.chatMessageId);
    renderMessages();
    sendReadReceipt();
  }

  async function collect(iterator) {
    const items = [];
    for await (const item of iterator) items.push(item);
    return items;
  }

  function setParticipants(participants) {
    state.current.participants = participants;
    state.current.names = new Map(participants.map((p) => [rawId(p.id), p.displayName || ""]));
    renderParticipants();
  }

  function renderParticipants() {
    const participants = state.current.participants;
    const names = participants.map((p) => {
      const id = rawId(p.id);
      return id === state.me.id ? `${state.me.name} (you)` : nameOf(id);
    });
    const count = `${participants.length} participant${participants.length === 1 ? "" : "s"}`;
    $("thread-participants").textContent = `${count}: ${names.join(", ")}`;
  }

  async function refreshParticipants() {
    const current = state.current;
    const participants = await collect(current.client.listParticipants());
    if (state.current === current) setParticipants(participants);
  }

  function closedThread(reason) {
    addSystemLine(reason);
    $("composer").querySelector("input").disabled = true;
  }

  function renderMessages() {
    const list = $("messages");
    list.replaceChildren(...[...state.current.messages.values()].map(renderMessage));
    if (!state.current.messages.size) {
      list.append(element("li", "system placeholder", "No messages yet. Say hello!"));
    }
    markSeen();
    list.scrollTop = list.scrollHeight;
  }

  function renderMessage(message) {
    const mine = rawId(message.sender) === state.me.id;
    const system = !["text", "html"].includes(message.type);
    const item = element("li", system ? "system" : mine ? "outgoing" : "incoming");
    item.dataset.messageId = message.id;
    if (system) {
      item.textContent = describeSystemMessage(message);
      return item;
    }
    const who = mine ? "You" : nameOf(rawId(message.sender), message.senderDisplayName);
    item.append(element("span", "who", `${who} · ${time(message.createdOn)}`));
    if (message.deletedOn) {
      item.classList.add("deleted");
      item.append(element("span", "body", "This message was deleted."));
      return item;
    }
    item.append(element("span", "body", message.content ? message.content.message : ""));
    const meta = element("span", "meta");
    if (message.editedOn) meta.append(element("span", "edited", "Edited"));
    if (mine) {
      const edit = element("button", "link", "Edit");
      edit.type = "button";
      edit.addEventListener("click", () => startEdit(item, message));
      const remove = element("button", "link", "Delete");
      remove.type = "button";
      remove.addEventListener("click", () => removeMessage(message));
      meta.append(edit, remove, element("span", "seen"));
    }
    item.append(meta);
    return item;
  }

  function describeSystemMessage(message) {
    const content = message.content || {};
    const by = content.initiator ? nameOf(rawId(content.initiator)) : "Someone";
    const who = (content.participants || []).map((p) => nameOf(rawId(p.id), p.displayName)).join(", ");
    if (message.type === "topicUpdated") return `${by} changed the topic to “${content.topic}”`;
    if (message.type === "participantAdded") return `${by} added ${who}`;
    if (message.type === "participantRemoved") return `${by} removed ${who}`;
    return message.type;
  }

  function addSystemLine(text) {
    $("messages").querySelectorAll(".placeholder").forEach((node) => node.remove());
    const item = element("li", "system", text);
    $("messages").append(item);
    $("messages").scrollTop = $("messages").scrollHeight;
  }

  function upsertMessage(message) {
    state.current.messages.set(message.id, message);
    const list = $("messages");
    list.querySelectorAll(".placeholder").forEach((node) => node.remove());
    const existing = list.querySelector(`li[data-message-id="${CSS.escape(message.id)}"]`);
    const item = renderMessage(message);
    if (existing) existing.replaceWith(item);
    else list.append(item);
    markSeen();
    if (!existing) list.scrollTop = list.scrollHeight;
  }

  // "Seen" under my latest message that another participant has read.
  function noteReceipt(readerId, messageId) {
    if (readerId === state.me.id) return;
    state.current.seenUpTo = Math.max(state.current.seenUpTo, Number(messageId));
  }

  function markSeen() {
    const list = $("messages");
    list.querySelectorAll(".seen").forEach((node) => (node.textContent = ""));
    const mine = [...list.querySelectorAll("li.outgoing:not(.deleted)")].filter(
      (item) => Number(item.dataset.messageId) <= state.current.seenUpTo
    );
    if (mine.length) mine[mine.length - 1].querySelector(".seen").textContent = "Seen";
  }

  function sendReadReceipt() {
    const current = state.current;
    if (!current || document.visibilityState === "hidden") return;
    const latest = [...current.messages.values()]
      .filter((m) => rawId(m.sender) !== state.me.id && ["text", "html"].includes(m.type))
      .reduce((top, m) => Math.max(top, Number(m.id)), 0);
    if (latest > current.receiptSent) {
      current.receiptSent = latest;
      current.client.sendReadReceipt({ chatMessageId: String(latest) }).catch(showError);
    }
  }
  document.addEventListener("visibilitychange", sendReadReceipt);

  // --- Composing, editing, deleting --------------------------------------------------------------
  const composer = $("composer");
  composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = composer.elements.message;
    const content = input.value.trim();
    if (!content || !state.current) return;
    const current = state.current;
    input.value = "";
    try {
      const { id } = await current.client.sendMessage({ content }, { senderDisplayName: state.me.name });
      // Shown at once; the realtime echo of the same message replaces it.
      if (state.current === current && !current.messages.has(id)) {
        upsertMessage({
          id,
          type: "text",
          sender: { kind: "communicationUser", communicationUserId: state.me.id },
          senderDisplayName: state.me.name,
          createdOn: new Date(),
          content: { message: content },
        });
      }
    } catch (error) {
      input.value = content;
      showError(error);
    }
  });
  composer.elements.message.addEventListener("input", () => {
    if (state.current && composer.elements.message.value) {
      state.current.client.sendTypingNotification({ senderDisplayName: state.me.name }).catch(() => {});
    }
  });

  function startEdit(item, message) {
    const form = element("form", "edit row");
    const input = element("input");
    input.name = "content";
    input.value = message.content.message;
    input.setAttribute("aria-label", "Edit message");
    const save = element("button", "primary", "Save");
    const cancel = element("button", "", "Cancel");
    cancel.type = "button";
    cancel.addEventListener("click", () => item.replaceWith(renderMessage(message)));
    form.append(input, save, cancel);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const content = input.value.trim();
      if (!content) return;
      try {
        await state.current.client.updateMessage(message.id, { content });
        upsertMessage({ ...message, content: { message: content }, editedOn: new Date() });
      } catch (error) {
        showError(error);
      }
    });
    item.querySelector(".body").replaceWith(form);
    item.querySelector(".meta").hidden = true;
    input.focus();
  }

  async function removeMessage(message) {
    if (!window.confirm("Delete this message for everyone?")) return;
    try {
      await state.current.client.deleteMessage(message.id);
      upsertMessage({ ...message, deletedOn: new Date() });
    } catch (error) {
      showError(error);
    }
  }

  $("add-participant").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = event.target.elements.participant;
    const id = input.value.trim();
    if (!id || !state.current) return;
    try {
      const participants = [{ id: { communicationUserId: id } }];
      showInvalid((await state.current.client.addParticipants({ participants })).invalidParticipants);
      input.value = "";
    } catch (error) {
      showError(error);
    }
  });

  $("delete-thread").addEventListener("click", async () => {
    if (!state.current || !window.confirm("Delete this thread for every participant?")) return;
    try {
      await state.client.deleteChatThread(state.current.id);
    } catch (error) {
      showError(error);
    }
  });

  // --- Realtime events ---------------------------------------------------------------------------
  function eventMessage(e) {
    return {
      id: e.id,
      type: e.type === "RichText/Html" ? "html" : "text",
      sender: e.sender,
      senderDisplayName: e.senderDisplayName,
      createdOn: e.createdOn,
      editedOn: e.editedOn,
      deletedOn: e.deletedOn,
      content: e.message !== undefined ? { message: e.message } : undefined,
      metadata: e.metadata,
    };
  }

  function onMessage(e) {
    const senderId = rawId(e.sender);
    if (!isOpen(e.threadId)) {
      if (!state.threads.has(e.threadId)) loadThreads().catch(showError);
      upsertThread({ id: e.threadId, unread: senderId !== state.me.id, activeAt: e.createdOn });
      return;
    }
    upsertThread({ id: e.threadId, activeAt: e.createdOn });
    learnName(senderId, e.senderDisplayName);
    state.typing.delete(senderId);
    renderTyping();
    upsertMessage(eventMessage(e));
    sendReadReceipt();
  }

  function onMessageEdited(e) {
    if (isOpen(e.threadId)) upsertMessage(eventMessage(e));
  }

  function onMessageDeleted(e) {
    if (!isOpen(e.threadId)) return;
    const known = state.current.messages.get(e.id) || eventMessage(e);
    upsertMessage({ ...known, deletedOn: e.deletedOn });
  }

  function onTyping(e) {
    const senderId = rawId(e.sender);
    if (!isOpen(e.threadId) || senderId === state.me.id) return;
    learnName(senderId, e.senderDisplayName);
    const name = nameOf(senderId, e.senderDisplayName);
    state.typing.set(senderId, { name, until: Date.now() + TYPING_SHOWN_MS });
    renderTyping();
    setTimeout(renderTyping, TYPING_SHOWN_MS + 50);
  }

  function renderTyping() {
    const now = Date.now();
    for (const [id, entry] of state.typing) if (entry.until <= now) state.typing.delete(id);
    const names = [...state.typing.values()].map((entry) => entry.name);
    const verb = names.length === 1 ? "is" : "are";
    $("typing").textContent = names.length ? `${names.join(", ")} ${verb} typing…` : "";
  }

  function onReadReceipt(e) {
    if (!isOpen(e.threadId)) return;
    noteReceipt(rawId(e.sender), e.chatMessageId);
    markSeen();
  }

  function onParticipantsAdded(e) {
    const added = e.participantsAdded.map((p) => rawId(p.id));
    if (added.includes(state.me.id) && !state.threads.has(e.threadId)) loadThreads().catch(showError);
    if (!isOpen(e.threadId)) return;
    const names = e.participantsAdded.map((p) => nameOf(rawId(p.id), p.displayName)).join(", ");
    addSystemLine(`${nameOf(rawId(e.addedBy.id), e.addedBy.displayName)} added ${names}`);
    refreshParticipants().catch(showError);
  }

  function onParticipantsRemoved(e) {
    const removed = e.participantsRemoved.map((p) => rawId(p.id));
    if (removed.includes(state.me.id)) {
      upsertThread({ id: e.threadId, left: true });
      if (isOpen(e.threadId)) closedThread("You are no longer in this thread.");
      return;
    }
    if (!isOpen(e.threadId)) return;
    const names = e.participantsRemoved.map((p) => nameOf(rawId(p.id), p.displayName)).join(", ");
    addSystemLine(`${nameOf(rawId(e.removedBy.id), e.removedBy.displayName)} removed ${names}`);
    refreshParticipants().catch(showError);
  }
})();
