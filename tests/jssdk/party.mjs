// One Matrix user on matrix-js-sdk with its Rust crypto, for interop tests. Prints JSON lines.
//   node party.mjs echo  <baseUrl> <userId> <token> <deviceId>
//       join invites; answer each decrypted text with "echo: <text>" (encrypted); runs until killed
//   node party.mjs send  <baseUrl> <userId> <token> <deviceId> <peerUserId> <text>
//       create an encrypted DM with peer, wait for them to join, send <text>, wait for a decrypted
//       reply from peer, print it, exit 0 (exit 1 on timeout)
//   node party.mjs backup-create <baseUrl> <userId> <token> <deviceId> <password> <text>
//       bootstrap cross-signing (password UIA) and a new key backup, send <text> in a new encrypted
//       room, wait until its key is in the backup; print the recovery key, version and room
//   node party.mjs backup-restore <baseUrl> <userId> <token> <deviceId> <recoveryKey> <version> <roomId>
//       a new device of the same user: restore the backup with the recovery key, print the room's
//       decrypted messages
//   node party.mjs crosssign <baseUrl> <userId> <token> <deviceId> <password> <peerUserId>
//       bootstrap cross-signing, then wait until the peer's cross-signing keys and devices are seen
//       (the peer must share an encrypted room with the user: the SDK tracks only such users)
//   node party.mjs history <baseUrl> <userId> <token> <deviceId> <password> <plainInvitee> <sharingInvitee> <before> <after>
//       bootstrap cross-signing, create an encrypted room, send <before>; invite <plainInvitee> with a bare
//       /invite (no keys go with it) and <sharingInvitee> with the SDK's invite, which shares the room's
//       history keys (MSC4268 key bundle); once both have joined, send <after>; runs until killed
//   node party.mjs reader <baseUrl> <userId> <token> <deviceId> <password>
//       bootstrap cross-signing, join invites, print each message (and each one it cannot decrypt,
//       then the message if its key comes later); runs until killed
//   node party.mjs dehydrate <baseUrl> <userId> <token> <deviceId> <password>
//       bootstrap cross-signing and secret storage (new key), start device dehydration (MSC3814);
//       print the secret storage key (as a recovery key) and the dehydrated device's ID
//   node party.mjs rehydrate <baseUrl> <userId> <token> <deviceId> <recoveryKey> <roomId>
//       a new device of the same user: rehydrate the dehydrated device with the secret storage key,
//       print how many room keys it brought and the room's decrypted messages
//   node party.mjs sas-request|sas-accept <baseUrl> <userId> <token> <deviceId> <otherDeviceId>
//       SAS (emoji) verification with another device of the same user: sas-request asks once it
//       knows the other device, sas-accept accepts. Each side prints the emojis and decimals, then
//       reads "confirm" or "mismatch" from stdin, and prints the other device's verification status
// Node 20 lacks Promise.withResolvers (Node 22 has it), which the SDK's sync loop uses.
if (!Promise.withResolvers) {
  Promise.withResolvers = function withResolvers() {
    let resolve, reject;
    const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
    return { promise, resolve, reject };
  };
}
const sdk = await import("matrix-js-sdk");
const { logger } = await import("matrix-js-sdk/lib/logger.js");

logger.setLevel(process.env.JSSDK_PARTY_LOG ? "debug" : "warn");
const [mode, baseUrl, userId, accessToken, deviceId, peer, text] = process.argv.slice(2);
// The SDK logs to stdout too: our lines carry a marker.
const out = (obj) => process.stdout.write("@@party " + JSON.stringify(obj) + "\n");
// the secret storage key, when this party has one (dehydration keeps its key in secret storage)
let secretStorageKey = null;
const cryptoCallbacks = {
  getSecretStorageKey: async ({ keys }) => (secretStorageKey ? [Object.keys(keys)[0], secretStorageKey] : null),
};
const client = sdk.createClient({ baseUrl, userId, accessToken, deviceId, cryptoCallbacks });
await client.initRustCrypto({ useIndexedDB: false });
const started = Date.now();

async function decrypted(event) {
  await client.decryptEventIfNeeded(event);
  return event;
}

client.on(sdk.RoomEvent.MyMembership, async (room, membership) => {
  if (membership === "invite" && mode === "echo") {
    await client.joinRoom(room.roomId);
    out({ joined: room.roomId });
  }
});

const seen = new Set();
client.on(sdk.RoomEvent.Timeline, async (event, room, toStart) => {
  if (toStart || !room) return;
  const ev = await decrypted(event);
  if (mode === "reader" && ev.isDecryptionFailure()) {
    out({ undecryptable: ev.getId(), room: room.roomId });
    // the SDK decrypts it again when a key for it arrives
    ev.once(sdk.MatrixEventEvent.Decrypted, () => { if (!ev.isDecryptionFailure()) heard(ev, room); });
    return;
  }
  heard(ev, room);
});

async function heard(ev, room) {
  if (ev.getType() !== "m.room.message" || ev.getSender() === userId || seen.has(ev.getId())) return;
  seen.add(ev.getId());
  const body = ev.getContent().body;
  out({ received: body, sender: ev.getSender(), encrypted: ev.isEncrypted(), room: room.roomId });
  if (mode === "echo") {
    await client.sendMessage(room.roomId, { msgtype: "m.text", body: `echo: ${body}` });
  } else if (mode === "send" && ev.getSender() === peer) {
    client.stopClient();
    process.exit(0);
  }
}

client.on(sdk.RoomEvent.MyMembership, async (room, membership) => {
  if (membership === "invite" && mode === "reader") {
    await readyToJoin;
    // the SDK stores an invited room after telling us of the invite; joining before that, it
    // would not know who invited us, and would not take the inviter's room key bundle (MSC4268)
    while (!client.getRoom(room.roomId)) await new Promise((r) => client.once(sdk.ClientEvent.Sync, r));
    await client.joinRoom(room.roomId);
    out({ joined: room.roomId });
  }
});
let crossSigningDone;
const readyToJoin = new Promise((resolve) => { crossSigningDone = resolve; });
const cryptoApi = await import("matrix-js-sdk/lib/crypto-api/index.js");
// a verification request can come during the first sync: listen from the start
const incomingVerification = new Promise((resolve) => {
  if (mode === "sas-accept") client.once(cryptoApi.CryptoEvent.VerificationRequestReceived, resolve);
});

await client.startClient({ initialSyncLimit: 20 });
await new Promise((resolve) => client.once(sdk.ClientEvent.Sync, resolve));
out({ ready: deviceId });

const fail = (error) => { out({ error }); process.exit(1); };
setTimeout(() => fail("timeout"), 220000);
const crypto = client.getCrypto();
// wait, sync after sync, until a condition on the client's state holds
async function untilSynced(cond) {
  while (!(await cond())) await new Promise((r) => client.once(sdk.ClientEvent.Sync, r));
}
const bootstrap = (password) => crypto.bootstrapCrossSigning({
  authUploadDeviceSigningKeys: async (makeRequest) => {
    await makeRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: userId }, password });
  },
});

if (mode === "backup-create") {
  const [password, secret] = [peer, text];
  await bootstrap(password);
  await crypto.resetKeyBackup();
  const version = await crypto.getActiveSessionBackupVersion();
  const { encodeRecoveryKey } = await import("matrix-js-sdk/lib/crypto-api/recovery-key.js");
  const { room_id: roomId } = await client.createRoom({
    initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
  });
  for (;;) {  // the room must be known to the client before it can encrypt for it
    if (client.getRoom(roomId)?.hasEncryptionStateEvent()) break;
    await new Promise((r) => client.once(sdk.ClientEvent.Sync, r));
  }
  await client.sendMessage(roomId, { msgtype: "m.text", body: secret });
  for (;;) {  // the SDK uploads room keys to the backup in the background
    const got = await client.http.authedRequest("GET", "/room_keys/keys", { version });
    if (got.rooms?.[roomId]) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  out({ recovery_key: encodeRecoveryKey(await crypto.getSessionBackupPrivateKey()), version, room: roomId,
        cross_signing_ready: await crypto.isCrossSigningReady() });
  process.exit(0);
}

if (mode === "backup-restore") {
  const [recoveryKey, version, roomId] = [peer, text, process.argv[9]];
  const { decodeRecoveryKey } = await import("matrix-js-sdk/lib/crypto-api/recovery-key.js");
  await crypto.storeSessionBackupPrivateKey(decodeRecoveryKey(recoveryKey), version);
  const result = await crypto.restoreKeyBackup();
  out({ restored: result.imported, total: result.total, messages: await roomMessages(roomId) });
  process.exit(0);
}

if (mode === "crosssign") {
  await bootstrap(peer);
  const other = text;
  for (;;) {
    if (await crypto.userHasCrossSigningKeys(other, true)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const devices = await crypto.getUserDeviceInfo([other], true);
  const keys = await crypto.getUserCrossSigningKeys(other);
  out({ ready: await crypto.isCrossSigningReady(), peer_devices: [...(devices.get(other)?.keys() ?? [])],
        peer_master_key: Boolean(keys?.master_key) });
  // stay until the peer has seen us too (the test kills us)
  await new Promise(() => {});
}

if (mode === "send") {
  const { room_id: roomId } = await client.createRoom({
    preset: "trusted_private_chat", is_direct: true, invite: [peer],
    initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
  });
  out({ created: roomId });
  // wait until the peer has joined, so its device gets the room key
  for (;;) {
    const members = await client.getJoinedRoomMembers(roomId);
    if (members.joined[peer]) break;
    await new Promise((r) => setTimeout(r, 100));
    if (Date.now() - started > 200000) { out({ error: "peer never joined" }); process.exit(1); }
  }
  // and until this client has synced the room's encryption state and the peer's join: before that
  // the SDK would send the message in the clear
  for (;;) {
    const room = client.getRoom(roomId);
    if (room?.hasEncryptionStateEvent() && room.getMember(peer)?.membership === "join") break;
    await new Promise((r) => client.once(sdk.ClientEvent.Sync, r));
  }
  await client.sendMessage(roomId, { msgtype: "m.text", body: text });
  out({ sent: text });
}

if (mode === "reader") {
  await bootstrap(peer);
  out({ cross_signing_ready: await crypto.isCrossSigningReady() });
  crossSigningDone();
}

if (mode === "history") {
  const [password, plainInvitee, sharingInvitee, before, after] = [peer, text, ...process.argv.slice(9)];
  await bootstrap(password);
  const { room_id: roomId } = await client.createRoom({
    preset: "private_chat",  // history visibility "shared": the room's keys may be shared with newcomers
    initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
  });
  await untilSynced(() => client.getRoom(roomId)?.hasEncryptionStateEvent());
  await client.sendMessage(roomId, { msgtype: "m.text", body: before });
  out({ sent: before, room: roomId });
  await client.http.authedRequest("POST", `/rooms/${encodeURIComponent(roomId)}/invite`, undefined,
                                  { user_id: plainInvitee });
  await client.invite(roomId, sharingInvitee);
  out({ invited: [plainInvitee, sharingInvitee] });
  const joined = (u) => client.getRoom(roomId)?.getMember(u)?.membership === "join";
  await untilSynced(() => joined(plainInvitee) && joined(sharingInvitee));
  await client.sendMessage(roomId, { msgtype: "m.text", body: after });
  out({ sent: after });
  await new Promise(() => {});
}

if (mode === "sas-request" || mode === "sas-accept") {
  const { VerificationPhase, VerificationRequestEvent, VerifierEvent } = cryptoApi;
  const other = peer;
  const readline = await import("node:readline");
  const commands = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const status = async () => {
    const s = await crypto.getDeviceVerificationStatus(userId, other);
    return s && { local: s.localVerified, verified: s.isVerified() };
  };
  // this device learns of the other one through device_lists and /keys/query
  await untilSynced(async () => (await crypto.getUserDeviceInfo([userId], true)).get(userId)?.has(other));
  out({ before: await status() });
  let request;
  if (mode === "sas-request") {
    request = await crypto.requestDeviceVerification(userId, other);
  } else {
    request = await incomingVerification;
    await request.accept();
  }
  out({ request: request.otherDeviceId ?? other });
  const changed = () => new Promise((r) => request.once(VerificationRequestEvent.Change, r));
  // the requester starts SAS once the other side is ready; the other side then sees it started
  if (mode === "sas-request") {
    while (request.phase < VerificationPhase.Ready) await changed();
    if (request.phase === VerificationPhase.Ready) await request.startVerification("m.sas.v1");
  } else {
    while (!request.verifier && request.phase !== VerificationPhase.Cancelled) await changed();
  }
  if (!request.verifier) fail(`verification ${request.phase}: ${request.cancellationCode}`);
  const verifier = request.verifier;
  let shown = false;
  const show = async (sas) => {
    if (shown) return;
    shown = true;
    out({ sas: { emoji: sas.sas.emoji?.map(([, name]) => name), decimal: sas.sas.decimal } });
    const { value } = await commands.next();
    if (value === "confirm") await sas.confirm(); else sas.mismatch();
  };
  verifier.on(VerifierEvent.ShowSas, show);
  if (verifier.getShowSasCallbacks()) show(verifier.getShowSasCallbacks());
  try {
    await verifier.verify();
  } catch (e) {
    out({ cancelled: String(e), after: await status() });
    await new Promise(() => {});
  }
  out({ after: await status(), done: request.phase === VerificationPhase.Done });
  await new Promise(() => {});
}

async function roomMessages(roomId) {
  const page = await client.createMessagesRequest(roomId, null, 20, sdk.Direction.Backward);
  const mapper = client.getEventMapper();
  const bodies = [];
  for (const raw of page.chunk.reverse()) {
    const ev = mapper(raw);
    await client.decryptEventIfNeeded(ev);
    if (ev.getType() === "m.room.message") bodies.push({ body: ev.getContent().body, encrypted: ev.isEncrypted() });
  }
  return bodies;
}

if (mode === "dehydrate") {
  await bootstrap(peer);
  await crypto.bootstrapSecretStorage({
    setupNewSecretStorage: true,
    createSecretStorageKey: async () => {
      const key = await crypto.createRecoveryKeyFromPassphrase();
      secretStorageKey = key.privateKey;
      out({ recovery_key: key.encodedPrivateKey });
      return key;
    },
  });
  const supported = await crypto.isDehydrationSupported();
  await crypto.startDehydration({ createNewKey: true });
  const got = await client.http.authedRequest("GET", "/dehydrated_device", undefined, undefined,
                                              { prefix: "/_matrix/client/unstable/org.matrix.msc3814.v1" });
  out({ supported, dehydrated: got.device_id });
  await new Promise(() => {});
}

if (mode === "rehydrate") {
  const [recoveryKey, roomId] = [peer, text];
  const { decodeRecoveryKey } = await import("matrix-js-sdk/lib/crypto-api/recovery-key.js");
  secretStorageKey = decodeRecoveryKey(recoveryKey);
  const progress = [];
  client.on(cryptoApi.CryptoEvent.RehydrationProgress, (roomKeys, toDevice) => progress.push([roomKeys, toDevice]));
  let completed = false;
  client.once(cryptoApi.CryptoEvent.RehydrationCompleted, () => { completed = true; });
  client.once(cryptoApi.CryptoEvent.RehydrationError, (e) => fail(`rehydration: ${e}`));
  // as a user does with a recovery key on a new login: the cross-signing keys come from secret
  // storage and sign this device (the SDK dehydrates only from a verified device); the keys are
  // checked against the public ones, which this device must have fetched first
  await untilSynced(() => crypto.userHasCrossSigningKeys(userId, true));
  await crypto.bootstrapCrossSigning({});
  await crypto.startDehydration({ rehydrate: true });  // rehydrates before it returns
  if (!completed) fail("no dehydrated device was rehydrated");
  out({ rehydrated: progress.at(-1) ?? [0, 0], messages: await roomMessages(roomId) });
  await new Promise(() => {});
}
