// @azure/communication-call-automation, unchanged, against Spool: the application places a call
// to an identity that a Python call agent answers (tests/e2e/test_js_sdks.py), greets it with a
// spoken prompt, collects two keys and hangs up; every callback is parsed by the SDK's own
// parseCallAutomationEvent. Needs SPOOL_CALLEE (the agent's raw id) and SPOOL_KEYS_URL (where
// the agent is asked to press keys).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { once } from "node:events";
import {
  CallAutomationClient,
  parseCallAutomationEvent,
} from "@azure/communication-call-automation";
import { connectionString } from "./spool.mjs";

const callee = { communicationUserId: process.env.SPOOL_CALLEE };
const keysUrl = process.env.SPOOL_KEYS_URL;
if (!callee.communicationUserId || !keysUrl) throw new Error("SPOOL_CALLEE / SPOOL_KEYS_URL unset");

// The application's callback endpoint: each POSTed body as the SDK parses it.
class Callbacks {
  constructor() {
    this.events = [];
    this.errors = [];
    this.server = createServer((request, response) => {
      const chunks = [];
      request.on("data", (chunk) => chunks.push(chunk));
      request.on("end", () => {
        const body = Buffer.concat(chunks).toString();
        try {
          this.events.push(parseCallAutomationEvent(body));
        } catch (error) {
          this.errors.push(`${error}: ${body}`);
        }
        response.writeHead(200).end();
      });
    });
  }

  async start() {
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    this.url = `http://127.0.0.1:${this.server.address().port}/callbacks`;
  }

  async waitFor(kind, operationContext, timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      assert.deepEqual(this.errors, [], "parseCallAutomationEvent refused a callback");
      const found = this.events.find(
        (e) => e.kind === kind && (operationContext === undefined || e.operationContext === operationContext),
      );
      if (found) return found;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`no ${kind} (${operationContext}); got ${this.events.map((e) => e.kind)}`);
  }

  stop() {
    this.server.closeAllConnections();
    this.server.close();
  }
}

test("call automation: create, properties, participants, play, recognize DTMF, hang up", { timeout: 60_000 }, async () => {
  const callbacks = new Callbacks();
  await callbacks.start();
  try {
    const client = new CallAutomationClient(connectionString);

    // the application calls the identity; the Python agent answers
    const created = await client.createCall({ targetParticipant: callee }, callbacks.url, {
      operationContext: "outbound",
    });
    const id = created.callConnectionProperties.callConnectionId;
    assert.ok(id);
    assert.deepEqual(
      created.callConnectionProperties.targetParticipants.map((t) => t.communicationUserId),
      [callee.communicationUserId],
    );
    const connected = await callbacks.waitFor("CallConnected");
    assert.equal(connected.callConnectionId, id);
    assert.ok(connected.serverCallId && connected.correlationId);
    assert.equal(connected.operationContext, "outbound");

    const connection = created.callConnection;
    const properties = await connection.getCallConnectionProperties();
    assert.equal(properties.callConnectionId, id);
    assert.equal(properties.callConnectionState, "connected");
    assert.equal(properties.serverCallId, connected.serverCallId);
    assert.equal(properties.callbackUrl ?? properties.callbackUri, callbacks.url);

    const participants = await connection.listParticipants();
    assert.deepEqual(
      participants.values.map((p) => p.identifier.communicationUserId),
      [callee.communicationUserId],
    );

    // a spoken prompt to everyone in the call
    const media = connection.getCallMedia();
    await media.playToAll([{ kind: "textSource", text: "Hello from Spool.", voiceName: "en-US-JennyNeural" }], {
      operationContext: "greeting",
    });
    const played = await callbacks.waitFor("PlayCompleted", "greeting", 30_000);
    assert.equal(played.callConnectionId, id);
    assert.equal(played.resultInformation.code, 200);

    // two keys, pressed by the callee once the recognizer runs
    await media.startRecognizing(callee, {
      kind: "callMediaRecognizeDtmfOptions",
      maxTonesToCollect: 2,
      initialSilenceTimeoutInSeconds: 10,
      interToneTimeoutInSeconds: 5,
      operationContext: "menu",
    });
    const asked = await fetch(keysUrl, { method: "POST", body: JSON.stringify({ tones: ["1", "2"] }) });
    assert.equal(asked.status, 200);
    const recognized = await callbacks.waitFor("RecognizeCompleted", "menu");
    assert.equal(recognized.callConnectionId, id);
    assert.equal(recognized.recognitionType, "dtmf");
    assert.deepEqual(recognized.dtmfResult.tones, ["one", "two"]);
    assert.equal(recognized.resultInformation.code, 200);
    assert.equal(recognized.resultInformation.subCode, 8531);

    // and the call ends for everyone
    await connection.hangUp(true);
    const disconnected = await callbacks.waitFor("CallDisconnected");
    assert.equal(disconnected.callConnectionId, id);
    const kinds = callbacks.events.map((e) => e.kind);
    assert.ok(kinds.indexOf("CallConnected") < kinds.indexOf("PlayCompleted"), `${kinds}`);
    assert.ok(kinds.indexOf("PlayCompleted") < kinds.indexOf("RecognizeCompleted"), `${kinds}`);
    assert.deepEqual(callbacks.errors, []);
  } finally {
    callbacks.stop();
  }
});
