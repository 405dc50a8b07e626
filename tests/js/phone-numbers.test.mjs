// @azure/communication-phone-numbers, unchanged, against Spool.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PhoneNumbersClient } from "@azure/communication-phone-numbers";
import { connectionString, ownedNumber, poll } from "./spool.mjs";

const client = new PhoneNumbersClient(connectionString);

test("browse countries, area codes and localities", async () => {
  const countries = [];
  for await (const country of client.listAvailableCountries()) countries.push(country.countryCode);
  assert.ok(countries.includes("US"));
  const areaCodes = [];
  for await (const code of client.listAvailableGeographicAreaCodes("US")) areaCodes.push(code);
  assert.ok(areaCodes.length > 0);
  // A query with characters URLSearchParams re-encodes before signing.
  const localities = [];
  for await (const l of client.listAvailableLocalities("US", { administrativeDivision: "New York*'()!~" })) {
    localities.push(l);
  }
  assert.deepEqual(localities, []);
});

test("search, purchase, update capabilities and release with pollers", async () => {
  const search = await (
    await client.beginSearchAvailablePhoneNumbers(
      {
        countryCode: "US",
        phoneNumberType: "geographic",
        assignmentType: "application",
        capabilities: { sms: "inbound+outbound", calling: "none" },
        quantity: 1,
      },
      poll,
    )
  ).pollUntilDone();
  assert.equal(search.phoneNumbers.length, 1);
  const [number] = search.phoneNumbers;

  await (await client.beginPurchasePhoneNumbers(search.searchId, poll)).pollUntilDone();
  const owned = await client.getPurchasedPhoneNumber(number);
  assert.equal(owned.phoneNumber, number);

  const updated = await (
    await client.beginUpdatePhoneNumberCapabilities(number, { sms: "outbound", calling: "none" }, poll)
  ).pollUntilDone();
  assert.equal(updated.capabilities.sms, "outbound");

  const listed = [];
  for await (const each of client.listPurchasedPhoneNumbers()) listed.push(each.phoneNumber);
  assert.ok(listed.includes(number) && listed.includes(ownedNumber));

  await (await client.beginReleasePhoneNumber(number, poll)).pollUntilDone();
  await assert.rejects(client.getPurchasedPhoneNumber(number), (error) => error.statusCode === 404);
});

test("operator information for numbers", async () => {
  const plain = await client.searchOperatorInformation([ownedNumber]);
  assert.equal(plain.values.length, 1);
  assert.equal(plain.values[0].phoneNumber, ownedNumber);
  assert.match(plain.values[0].nationalFormat, /^\(\d{3}\) \d{3}-\d{4}$/);
  assert.equal(plain.values[0].numberType, undefined);

  const detailed = await client.searchOperatorInformation([ownedNumber, "+447400123456"], {
    includeAdditionalOperatorDetails: true,
  });
  const [ours, theirs] = detailed.values;
  assert.equal(ours.isoCountryCode, "US");
  assert.equal(ours.numberType, "geographic");
  assert.equal(ours.operatorDetails.name, "Spool");
  assert.equal(theirs.isoCountryCode, "GB");
  assert.equal(theirs.numberType, "mobile");
  assert.equal(theirs.operatorDetails, undefined);
});
