// What tests/e2e/test_js_sdks.py hands each test file: the connection string exactly as
// `manage.py create_resource` printed it, and a number the resource owns.
export const connectionString = process.env.SPOOL_CONNECTION_STRING;
export const ownedNumber = process.env.SPOOL_OWNED_NUMBER;
if (!connectionString) throw new Error("SPOOL_CONNECTION_STRING is not set");
export const endpoint = /endpoint=([^;]+);/i.exec(connectionString)[1];
// Pollers: Spool finishes number operations in well under a second.
export const poll = { updateIntervalInMs: 200 };
