// @azure/communication-sms, unchanged, against Spool.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SmsClient } from "@azure/communication-sms";
import { connectionString, ownedNumber } from "./spool.mjs";

const client = new SmsClient(connectionString);

test("send to handsets outside the deployment, with delivery reports", async () => {
  const results = await client.send(
    { from: ownedNumber, to: ["+447700900123", "+447700900124"], message: "Hello from node" },
    { enableDeliveryReport: true, tag: "js-sdk" },
  );
  assert.equal(results.length, 2);
  for (const result of results) {
    assert.ok(result.successful, JSON.stringify(result));
    assert.equal(result.httpStatusCode, 202);
    assert.ok(result.messageId);
  }
});

test("a sender the resource does not own is refused per recipient or as a whole", async () => {
  await assert.rejects(
    client.send({ from: "+15550000000", to: ["+447700900123"], message: "no" }),
    (error) => error.statusCode >= 400 && error.statusCode < 500,
  );
});
