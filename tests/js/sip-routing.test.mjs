// SipRoutingClient from @azure/communication-phone-numbers, unchanged, against Spool's
// direct routing API (GET/PATCH /sip, merge-patch): trunks and routes set, read and deleted,
// and refusals in the ACS shape that change nothing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SipRoutingClient } from "@azure/communication-phone-numbers";
import { connectionString } from "./spool.mjs";

const client = new SipRoutingClient(connectionString);

async function allTrunks() {
  const trunks = [];
  for await (const trunk of client.listTrunks()) trunks.push(trunk);
  return trunks;
}

async function allRoutes() {
  const routes = [];
  for await (const route of client.listRoutes()) routes.push(route);
  return routes;
}

test("set, read and delete trunks and routes", async () => {
  const set = await client.setTrunks([
    { fqdn: "sbc1.js.test", sipSignalingPort: 5061 },
    { fqdn: "sbc2.js.test", sipSignalingPort: 5062 },
  ]);
  assert.deepEqual(set.map((t) => t.fqdn).sort(), ["sbc1.js.test", "sbc2.js.test"]);
  const one = await client.getTrunk("sbc2.js.test");
  assert.equal(one.sipSignalingPort, 5062);

  const routes = await client.setRoutes([
    { name: "us", description: "US numbers", numberPattern: "^\\+1\\d{10}$", trunks: ["sbc1.js.test", "sbc2.js.test"] },
    { name: "rest", numberPattern: "^\\+\\d+$", trunks: ["sbc2.js.test"] },
  ]);
  assert.deepEqual(routes.map((r) => r.name), ["us", "rest"]);
  assert.deepEqual((await allRoutes())[0].trunks, ["sbc1.js.test", "sbc2.js.test"]);

  // A trunk a route uses cannot go; once the routes are cleared, it can.
  await assert.rejects(client.deleteTrunk("sbc2.js.test"), (error) => error.statusCode >= 400);
  assert.equal((await allTrunks()).length, 2);
  await client.setRoutes([]);
  await client.deleteTrunk("sbc2.js.test");
  assert.deepEqual((await allTrunks()).map((t) => t.fqdn), ["sbc1.js.test"]);
  await client.setTrunks([]);
  assert.deepEqual(await allTrunks(), []);
});

test("a route to a trunk that does not exist is refused and changes nothing", async () => {
  await client.setTrunks([{ fqdn: "sbc3.js.test", sipSignalingPort: 5060 }]);
  await assert.rejects(
    client.setRoutes([{ name: "bad", numberPattern: "^\\+1", trunks: ["nowhere.js.test"] }]),
    (error) => error.statusCode === 422,
  );
  assert.deepEqual(await allRoutes(), []);
  await client.setTrunks([]);
});
