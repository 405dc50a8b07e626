// @azure/communication-chat 1.6.0, unchanged, against Spool: it sends api-version 2025-03-15,
// with thread and participant metadata and retention policies. Identities come from
// @azure/communication-identity, tokens reach the chat client as the SDK's docs show.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { ChatClient } from "@azure/communication-chat";
import { AzureCommunicationTokenCredential } from "@azure/communication-common";
import { CommunicationIdentityClient } from "@azure/communication-identity";
import { CommunicationSignalingClient } from "@azure/communication-signaling";
import { connectionString, endpoint } from "./spool.mjs";

const identities = new CommunicationIdentityClient(connectionString);

async function newUser() {
  const { user, token } = await identities.createUserAndToken(["chat"]);
  const credential = new AzureCommunicationTokenCredential(token);
  return { user, token, credential, chat: new ChatClient(endpoint, credential) };
}

async function all(iterator) {
  const items = [];
  for await (const item of iterator) items.push(item);
  return items;
}

const idOf = (participant) => participant.id.communicationUserId;
const days = (n) => ({ kind: "threadCreationDate", deleteThreadAfterDays: n });

test("a thread with metadata, a retention policy and participant metadata", async () => {
  const [alice, bob] = [await newUser(), await newUser()];
  const metadata = { threadType: "primary", secondaryThread: "none" };

  const { chatThread, invalidParticipants } = await alice.chat.createChatThread(
    { topic: "Launch" },
    {
      participants: [
        { id: alice.user, displayName: "Alice", metadata: { role: "owner" } },
        { id: bob.user, displayName: "Bob", metadata: { role: "reviewer" } },
      ],
      metadata,
      retentionPolicy: days(30),
    },
  );
  assert.ok(!invalidParticipants?.length, JSON.stringify(invalidParticipants));
  assert.match(chatThread.id, /^19:.+@thread\.v2$/);
  assert.deepEqual(chatThread.metadata, metadata);
  assert.deepEqual(chatThread.retentionPolicy, days(30));
  assert.equal(chatThread.createdBy.communicationUserId, alice.user.communicationUserId);

  // Bob reads the same properties.
  const bobsThread = bob.chat.getChatThreadClient(chatThread.id);
  const properties = await bobsThread.getProperties();
  assert.equal(properties.topic, "Launch");
  assert.deepEqual(properties.metadata, metadata);
  assert.deepEqual(properties.retentionPolicy, days(30));
  assert.ok(properties.createdOn instanceof Date);

  // Participants come back with their metadata.
  const participants = await all(bobsThread.listParticipants());
  const byId = Object.fromEntries(participants.map((p) => [idOf(p), p]));
  assert.deepEqual(byId[bob.user.communicationUserId].metadata, { role: "reviewer" });
  assert.deepEqual(byId[alice.user.communicationUserId].metadata, { role: "owner" });
  assert.equal(byId[bob.user.communicationUserId].displayName, "Bob");

  // updateProperties: topic, metadata (merged) and the policy in one call, then each alone.
  const thread = alice.chat.getChatThreadClient(chatThread.id);
  await thread.updateProperties({
    topic: "Launch day",
    metadata: { stage: "go" },
    retentionPolicy: { kind: "none" },
  });
  let now = await bobsThread.getProperties();
  assert.equal(now.topic, "Launch day");
  assert.deepEqual(now.metadata, { ...metadata, stage: "go" });
  assert.deepEqual(now.retentionPolicy, { kind: "none" });

  await thread.updateProperties({ retentionPolicy: days(90) });
  await thread.updateTopic("Launch week");
  now = await thread.getProperties();
  assert.equal(now.topic, "Launch week");
  assert.deepEqual(now.retentionPolicy, days(90));
  assert.deepEqual(now.metadata, { ...metadata, stage: "go" });

  // A thread created without a policy reports kind none.
  const plain = await alice.chat.createChatThread({ topic: "Plain" });
  assert.deepEqual(plain.chatThread.retentionPolicy, { kind: "none" });
  assert.deepEqual(plain.chatThread.metadata, {});
});

test("bad metadata and policies are a 400 naming the field, and change nothing", async () => {
  const alice = await newUser();
  const { chatThread } = await alice.chat.createChatThread(
    { topic: "Strict" },
    { metadata: { k: "v" }, retentionPolicy: days(10) },
  );
  const thread = alice.chat.getChatThreadClient(chatThread.id);

  await assert.rejects(thread.updateProperties({ retentionPolicy: days(91) }), (error) => {
    assert.equal(error.statusCode, 400);
    assert.match(error.message, /deleteThreadAfterDays/);
    return true;
  });
  await assert.rejects(
    thread.updateProperties({ topic: "Changed", metadata: { big: "x".repeat(1100) } }),
    (error) => error.statusCode === 400 && /1024 bytes/.test(error.message),
  );
  await assert.rejects(
    alice.chat.createChatThread({ topic: "Too much" }, { metadata: { big: "x".repeat(1100) } }),
    (error) => error.statusCode === 400,
  );

  const after = await thread.getProperties();
  assert.equal(after.topic, "Strict");
  assert.deepEqual(after.metadata, { k: "v" });
  assert.deepEqual(after.retentionPolicy, days(10));
});

test("messages: send, get, list, update, delete", async () => {
  const [alice, bob] = [await newUser(), await newUser()];
  const { chatThread } = await alice.chat.createChatThread(
    { topic: "Messages" },
    { participants: [{ id: bob.user, displayName: "Bob" }] },
  );
  const thread = alice.chat.getChatThreadClient(chatThread.id);
  const bobsThread = bob.chat.getChatThreadClient(chatThread.id);

  const { id } = await thread.sendMessage(
    { content: "Hello Bob" },
    { senderDisplayName: "Alice", metadata: { tags: "greeting" } },
  );
  await bobsThread.sendMessage({ content: "<b>Hi</b>" }, { type: "html" });

  const message = await bobsThread.getMessage(id);
  assert.equal(message.content.message, "Hello Bob");
  assert.equal(message.senderDisplayName, "Alice");
  assert.deepEqual(message.metadata, { tags: "greeting" });
  assert.equal(message.sender.communicationUserId, alice.user.communicationUserId);

  const listed = (await all(thread.listMessages())).filter((m) => m.type !== "participantAdded");
  assert.deepEqual(
    listed.map((m) => [m.type, m.content.message]),
    [
      ["html", "<b>Hi</b>"],
      ["text", "Hello Bob"],
    ],
  );
  // Paging follows nextLink.
  const pages = [];
  for await (const page of thread.listMessages({ maxPageSize: 1 }).byPage()) pages.push(page);
  assert.ok(pages.length >= 2 && pages.every((page) => page.length <= 1));

  await thread.updateMessage(id, { content: "Hello again", metadata: { tags: "edited" } });
  const edited = await bobsThread.getMessage(id);
  assert.equal(edited.content.message, "Hello again");
  assert.deepEqual(edited.metadata, { tags: "edited" });
  assert.ok(edited.editedOn instanceof Date);

  await thread.deleteMessage(id);
  const deleted = await bobsThread.getMessage(id);
  assert.ok(deleted.deletedOn instanceof Date);

  // Only the sender changes a message.
  await assert.rejects(bobsThread.updateMessage(id, { content: "mine" }), (e) => e.statusCode === 403);
});

test("participants: add, list, remove, and removing someone not in the thread succeeds", async () => {
  const [alice, bob, carol, dave] = [
    await newUser(),
    await newUser(),
    await newUser(),
    await newUser(),
  ];
  const { chatThread } = await alice.chat.createChatThread(
    { topic: "People" },
    { participants: [{ id: bob.user }] },
  );
  const thread = alice.chat.getChatThreadClient(chatThread.id);

  const added = await thread.addParticipants({
    participants: [
      {
        id: carol.user,
        displayName: "Carol",
        shareHistoryTime: new Date(),
        metadata: { team: "red" },
      },
    ],
  });
  assert.ok(!added.invalidParticipants?.length, JSON.stringify(added));
  let participants = await all(thread.listParticipants());
  const carolAsListed = participants.find((p) => idOf(p) === carol.user.communicationUserId);
  assert.equal(carolAsListed.displayName, "Carol");
  assert.deepEqual(carolAsListed.metadata, { team: "red" });
  assert.ok(carolAsListed.shareHistoryTime instanceof Date);

  await thread.removeParticipant(carol.user);
  participants = await all(thread.listParticipants());
  assert.deepEqual(
    participants.map(idOf).sort(),
    [alice.user.communicationUserId, bob.user.communicationUserId].sort(),
  );
  const removed = (await all(thread.listMessages())).find((m) => m.type === "participantRemoved");
  assert.equal(idOf(removed.content.participants[0]), carol.user.communicationUserId);

  // As on ACS (and as the official samples expect): removing someone who is not in the
  // thread, again or never added, succeeds and changes nothing.
  await thread.removeParticipant(carol.user);
  await thread.removeParticipant(dave.user);
  assert.equal((await all(thread.listParticipants())).length, 2);

  // Carol lost access; Bob may leave.
  const carolsThread = carol.chat.getChatThreadClient(chatThread.id);
  await assert.rejects(carolsThread.getProperties(), (e) => e.statusCode === 403);
  await bob.chat.getChatThreadClient(chatThread.id).removeParticipant(bob.user);
  assert.deepEqual((await all(thread.listParticipants())).map(idOf), [
    alice.user.communicationUserId,
  ]);
});

test("read receipts and typing notifications", async () => {
  const [alice, bob] = [await newUser(), await newUser()];
  const { chatThread } = await alice.chat.createChatThread(
    { topic: "Receipts" },
    { participants: [{ id: bob.user, displayName: "Bob" }] },
  );
  const thread = alice.chat.getChatThreadClient(chatThread.id);
  const bobsThread = bob.chat.getChatThreadClient(chatThread.id);
  const { id } = await thread.sendMessage({ content: "Read me" });

  await bobsThread.sendReadReceipt({ chatMessageId: id });
  const receipts = await all(thread.listReadReceipts());
  assert.equal(receipts.length, 1);
  assert.equal(receipts[0].chatMessageId, id);
  assert.equal(receipts[0].sender.communicationUserId, bob.user.communicationUserId);
  assert.ok(receipts[0].readOn instanceof Date);

  assert.equal(await bobsThread.sendTypingNotification({ senderDisplayName: "Bob" }), true);
  // The SDK itself sends at most one every 8 seconds.
  assert.equal(await bobsThread.sendTypingNotification(), false);
});

test("startRealtimeNotifications() rejects in Node instead of hanging", async () => {
  const alice = await newUser();
  const started = alice.chat.startRealtimeNotifications();
  const timeout = new Promise((_, reject) =>
    setTimeout(() => reject(new Error("startRealtimeNotifications() hung")), 5000).unref(),
  );
  await assert.rejects(Promise.race([started, timeout]), /not supported in node js/);
});

test("the browser's realtime start fails at once with a pointer to Spool's socket", async () => {
  const alice = await newUser();
  // What startRealtimeNotifications() does first in a browser: GET the realtime
  // configuration, at `${endpoint}/chat/...`, a double slash when the endpoint ends with "/".
  const url = `${endpoint.replace(/\/?$/, "/")}/chat/config/realTimeNotifications?api-version=2024-09-01`;
  assert.match(url, /[^:]\/\/chat\/config/);
  const response = await fetch(url, { headers: { Authorization: `Bearer ${alice.token}` } });
  assert.equal(response.status, 501);
  const { error } = await response.json();
  assert.equal(error.code, "RealtimeNotificationsNotSupported");
  assert.match(error.message, /spool-chat\.js/);

  // The browser SDK's signaling client, which makes that request, rejects quickly with it.
  const quiet = { info() {}, warning() {}, error() {}, verbose() {} };
  const signaling = new CommunicationSignalingClient(alice.credential, quiet, {
    resourceEndpoint: endpoint,
    gatewayApiVersion: "2025-03-15",
  });
  const began = Date.now();
  await assert.rejects(signaling.start(), (e) => {
    assert.match(e.message, /Failed to fetch service URLs\. Status: 501/);
    assert.match(e.message, /RealtimeNotificationsNotSupported/);
    return true;
  });
  assert.ok(Date.now() - began < 10_000, "no retries on 501");
});

test("the browser build's startRealtimeNotifications() rejects, then a second call resolves", async () => {
  // The SDK's browser build (what a bundler picks for a page), loaded in Node: its
  // startRealtimeNotifications() makes the request above and rejects with Spool's answer.
  const browserBuild = new URL(
    "./node_modules/@azure/communication-chat/dist/browser/index.js",
    import.meta.url,
  );
  const { ChatClient: BrowserChatClient } = await import(browserBuild);
  const alice = await newUser();
  const chat = new BrowserChatClient(endpoint, alice.credential);

  await assert.rejects(chat.startRealtimeNotifications(), (e) => {
    assert.match(e.message, /^Error fetching real-time notification configuration/);
    assert.match(e.message, /Status: 501, Body: .*RealtimeNotificationsNotSupported/);
    return true;
  });
  // An SDK bug docs/chat-realtime-with-sdk.md warns of: it marks itself started before the
  // request, so a second call resolves at once although nothing is connected.
  await chat.startRealtimeNotifications();
  await chat.stopRealtimeNotifications();
});

// docs/chat-realtime-with-sdk.md's Node example: the SDK for the API, Spool's chat client (as
// Spool serves it) for live events. Node 20 needs --experimental-websocket for WebSocket.
const LIVE_EXAMPLE = `
import { mkdtempSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ChatClient } from "@azure/communication-chat";
import { AzureCommunicationTokenCredential } from "@azure/communication-common";
import { CommunicationIdentityClient } from "@azure/communication-identity";

const connectionString = process.env.SPOOL_CONNECTION_STRING;
const endpoint = /endpoint=([^;]+)/i.exec(connectionString)[1];
const file = join(mkdtempSync(join(tmpdir(), "spool-chat-")), "spool-chat.cjs");
const script = await fetch(new URL("/static/chat/spool-chat.js", endpoint));
writeFileSync(file, await script.text());
const SpoolChat = createRequire(import.meta.url)(file);

const identities = new CommunicationIdentityClient(connectionString);
const alice = await identities.createUserAndToken(["chat"]);
const bob = await identities.createUserAndToken(["chat"]);
const aliceChat = new ChatClient(endpoint, new AzureCommunicationTokenCredential(alice.token));
const bobLive = new SpoolChat.ChatClient(endpoint, new AzureCommunicationTokenCredential(bob.token));

const connected = new Promise((resolve) => bobLive.on("realtimeNotificationConnected", resolve));
const received = new Promise((resolve) => bobLive.on("chatMessageReceived", resolve));
const created = new Promise((resolve) => bobLive.on("chatThreadCreated", resolve));
await bobLive.startRealtimeNotifications();
await connected;

const { chatThread } = await aliceChat.createChatThread(
  { topic: "Live" },
  { participants: [{ id: bob.user, displayName: "Bob" }], metadata: { room: "42" } },
);
await aliceChat.getChatThreadClient(chatThread.id).sendMessage(
  { content: "Hello Bob" },
  { senderDisplayName: "Alice" },
);
const thread = await created;
const message = await received;
console.log(JSON.stringify({ metadata: thread.properties.metadata, from: message.senderDisplayName, text: message.message }));
await bobLive.stopRealtimeNotifications();
`;

test("live events: the SDK for the API, Spool's chat client for the socket", () => {
  const flags = typeof WebSocket === "undefined" ? ["--experimental-websocket"] : [];
  const run = spawnSync(process.execPath, [...flags, "--input-type=module", "-e", LIVE_EXAMPLE], {
    cwd: fileURLToPath(new URL(".", import.meta.url)),
    env: process.env,
    encoding: "utf8",
    timeout: 60_000,
  });
  assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}`);
  assert.deepEqual(JSON.parse(run.stdout.trim().split("\n").at(-1)), {
    metadata: { room: "42" },
    from: "Alice",
    text: "Hello Bob",
  });
});
