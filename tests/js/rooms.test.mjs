// @azure/communication-rooms, unchanged, against Spool.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RoomsClient } from "@azure/communication-rooms";
import { CommunicationIdentityClient } from "@azure/communication-identity";
import { connectionString } from "./spool.mjs";

const rooms = new RoomsClient(connectionString);
const identities = new CommunicationIdentityClient(connectionString);

test("rooms: create, get, update, participants, list, delete", async () => {
  const [alice, bob] = [await identities.createUser(), await identities.createUser()];
  const validFrom = new Date(Date.now() - 60e3);
  const validUntil = new Date(Date.now() + 3600e3);
  const room = await rooms.createRoom({
    validFrom,
    validUntil,
    pstnDialOutEnabled: false,
    participants: [{ id: alice, role: "Presenter" }],
  });
  assert.ok(room.id);
  assert.equal((await rooms.getRoom(room.id)).id, room.id);

  const later = new Date(Date.now() + 7200e3);
  const updated = await rooms.updateRoom(room.id, { validUntil: later });
  assert.equal(updated.validUntil.getTime(), later.getTime());

  await rooms.addOrUpdateParticipants(room.id, [{ id: bob, role: "Attendee" }]);
  const listed = [];
  for await (const participant of rooms.listParticipants(room.id)) listed.push(participant);
  assert.deepEqual(
    listed.map((p) => p.role).sort(),
    ["Attendee", "Presenter"],
  );
  await rooms.removeParticipants(room.id, [bob]);

  const all = [];
  for await (const each of rooms.listRooms()) all.push(each.id);
  assert.ok(all.includes(room.id));

  await rooms.deleteRoom(room.id);
  await assert.rejects(rooms.getRoom(room.id), (error) => error.statusCode === 404);
});
