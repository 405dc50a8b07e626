// @azure/communication-identity, unchanged, against Spool.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CommunicationIdentityClient } from "@azure/communication-identity";
import { connectionString } from "./spool.mjs";

const client = new CommunicationIdentityClient(connectionString);

test("identities and tokens: create, issue, revoke, delete", async () => {
  const { user, token, expiresOn } = await client.createUserAndToken(["chat", "voip"]);
  assert.match(user.communicationUserId, /^8:acs:/);
  assert.ok(token.split(".").length === 3 && expiresOn > new Date());

  const short = await client.getToken(user, ["chat"], { tokenExpiresInMinutes: 60 });
  const lifetime = short.expiresOn.getTime() - Date.now();
  assert.ok(lifetime > 59 * 60e3 && lifetime <= 60 * 60e3, `lifetime ${lifetime}`);

  await client.revokeTokens(user);
  await client.deleteUser(user);
  await assert.rejects(client.getToken(user, ["chat"]), (error) => error.statusCode === 404);
});

test("bad input is a clear 400 in the ACS shape", async () => {
  const user = await client.createUser();
  await assert.rejects(
    client.getToken(user, ["chat"], { tokenExpiresInMinutes: 5 }),
    (error) => error.statusCode === 400 && /60/.test(error.message),
  );
});

test("a wrong key is refused", async () => {
  const wrong = connectionString.replace(/accesskey=.*/i, "accesskey=" + Buffer.alloc(32).toString("base64"));
  await assert.rejects(
    new CommunicationIdentityClient(wrong).createUser(),
    (error) => error.statusCode === 401,
  );
});
