// kyso's flows from Node.js, as a new integrator writes them: @grpc/grpc-js with the .proto files
// loaded at run time by @grpc/proto-loader (no generated code). Run by tests/api/test_node_client.py.
//
// Input (environment): KYSO_ADDRESS (host:port), KYSO_TOKEN, KYSO_PROTOS (protos/), KYSO_GOOGLE
// (a directory holding google/rpc/*.proto), KYSO_PDF (a PDF file), KYSO_OFFICIAL (an official's
// certificate, DER), KYSO_FROM / KYSO_TO (units). Output: one JSON object on stdout — what each
// flow returned and, for each error case, the code and the BadRequest field paths the client
// decoded from the grpc-status-details-bin trailer. The Python test asserts on it.
'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const env = process.env;
const LOADER = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

function load() {
  const dir = path.join(env.KYSO_PROTOS, 'kyso', 'v1');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.proto')).map((f) => `kyso/v1/${f}`);
  const definition = protoLoader.loadSync(files, { ...LOADER, includeDirs: [env.KYSO_PROTOS] });
  return grpc.loadPackageDefinition(definition).kyso.v1;
}

const kyso = load();
const details = new protobuf.Root().loadSync(
  [path.join(env.KYSO_GOOGLE, 'google', 'rpc', 'status.proto'), path.join(env.KYSO_GOOGLE, 'google', 'rpc', 'error_details.proto')],
  { keepCase: true },
);
const Status = details.lookupType('google.rpc.Status');
const BadRequest = details.lookupType('google.rpc.BadRequest');

// Settings an integrator would choose: messages up to the server's 16 MiB, pings every 10 s.
const OPTIONS = {
  'grpc.max_receive_message_length': 16 * 1024 * 1024,
  'grpc.max_send_message_length': 16 * 1024 * 1024,
  'grpc.keepalive_time_ms': 10000,
  'grpc.keepalive_permit_without_calls': 1,
};
const credentials = grpc.credentials.createInsecure();
const client = (Service) => new Service(env.KYSO_ADDRESS, credentials, OPTIONS);
const signing = client(kyso.SigningService);
const verification = client(kyso.VerificationService);
const documents = client(kyso.DocumentService);
const exchange = client(kyso.ExchangeService);
const directory = client(kyso.DirectoryService);

function auth(token = env.KYSO_TOKEN) {
  const metadata = new grpc.Metadata();
  if (token) metadata.add('authorization', `Bearer ${token}`);
  return metadata;
}

const deadline = () => new Date(Date.now() + 60_000);

function unary(stub, method, request, metadata = auth()) {
  return new Promise((resolve, reject) => {
    stub[method](request, metadata, { deadline: deadline() }, (err, reply) =>
      err ? reject(err) : resolve(reply),
    );
  });
}

function serverStream(stub, method, request, metadata = auth()) {
  return new Promise((resolve, reject) => {
    const items = [];
    const call = stub[method](request, metadata, { deadline: deadline() });
    call.on('data', (item) => items.push(item));
    call.on('error', reject);
    call.on('end', () => resolve(items));
  });
}

function upload(bytes, filename, sha256) {
  return new Promise((resolve, reject) => {
    const call = documents.Upload(auth(), { deadline: deadline() }, (err, reply) =>
      err ? reject(err) : resolve(reply),
    );
    call.write({ metadata: { filename, content_type: 'application/pdf', sha256, size: bytes.length } });
    for (let start = 0; start < bytes.length; start += 64 * 1024) {
      call.write({ chunk: bytes.subarray(start, start + 64 * 1024) });
    }
    call.end();
  });
}

// What a failed call tells a program: the code's name, and the BadRequest's field paths.
function failure(err) {
  const out = { code: grpc.status[err.code], message: err.details, fields: [], request_id: '' };
  const [packed] = err.metadata.get('grpc-status-details-bin');
  if (packed) {
    for (const any of Status.decode(packed).details) {
      if (any.type_url === 'type.googleapis.com/google.rpc.BadRequest') {
        out.fields.push(...BadRequest.decode(any.value).field_violations.map((v) => v.field));
      }
    }
  }
  const [requestId] = err.metadata.get('kyso-request-id');
  out.request_id = requestId ? String(requestId) : '';
  return out;
}

async function refused(call) {
  try {
    await call();
  } catch (err) {
    return failure(err);
  }
  throw new Error('the call succeeded where an error was expected');
}

const sha256 = (bytes) => crypto.createHash('sha256').update(bytes).digest('hex');

async function main() {
  const pdf = fs.readFileSync(env.KYSO_PDF);
  const official = fs.readFileSync(env.KYSO_OFFICIAL);
  const result = {};

  // sign + verify
  const signed = await unary(signing, 'SignPdf', {
    document: { content: pdf, filename: 'qd.pdf' }, key_alias: 'seal', level: 'SIGNATURE_LEVEL_B_LT',
  });
  assert.equal(signed.document.sha256, sha256(signed.content), 'the signed bytes are the stored ones');
  const report = await unary(verification, 'VerifyPdf', { document: { ref: signed.document.ref }, language: 'en' });
  // the seal's appearance with no placement: the server places it
  const sealed = await unary(signing, 'SignPdf', {
    document: { content: pdf }, key_alias: 'seal', appearance: 'APPEARANCE_SEAL', request_id: `node-${Date.now()}`,
  });
  result.sign = {
    ref: signed.document.ref.ref, size: signed.document.size, level: signed.level, ledger_index: signed.ledger_index,
    sealed_without_placement: sealed.document.ref.ref,
  };
  result.verify = { indication: report.indication, signatures: report.signatures.length };

  // upload + download (+ stat)
  const stored = await upload(pdf, 'upload.pdf', sha256(pdf));
  const chunks = await serverStream(documents, 'Download', { ref: stored.ref });
  const downloaded = Buffer.concat(chunks.map((c) => c.chunk));
  const info = await unary(documents, 'Stat', { ref: stored.ref });
  result.upload = { ref: stored.ref.ref, size: stored.size, downloaded_sha256: sha256(downloaded), filename: info.filename };

  // two-phase: prepare, list, cancel; completing the cancelled session is refused
  const prepared = await unary(signing, 'PrepareSignature', { document: { content: pdf }, certificate: official, title: 'Node' });
  const pending = await unary(signing, 'ListPendingSignatures', { certificate_sha256: sha256(official) });
  await unary(signing, 'CancelSignature', { session_id: prepared.session_id, reason: 'test' });
  const completeCancelled = await refused(() =>
    unary(signing, 'CompleteSignature', { session_id: prepared.session_id, signature_value: Buffer.alloc(256) }),
  );
  result.two_phase = {
    sign_input: prepared.sign_input,
    data_to_sign_bytes: prepared.data_to_sign.length,
    listed: pending.pending.some((p) => p.session_id === prepared.session_id),
    complete_cancelled: completeCancelled,
  };

  // send → receive → ack → status → track
  const sendRequest = {
    from_unit: env.KYSO_FROM,
    to_units: [env.KYSO_TO],
    document_id: `node-${Date.now()}`,
    fields: { subject: 'Về việc thử nghiệm Node.js', code_number: `${Date.now()}`, code_notation: 'UBND' },
  };
  const sent = await unary(exchange, 'Send', sendRequest);
  // a workflow that retries after a timeout sends exactly the same request again
  const resent = await unary(exchange, 'Send', sendRequest);
  const deliveries = await serverStream(exchange, 'Receive', { unit_code: env.KYSO_TO, max_deliveries: 1, lease_seconds: 30 });
  assert.equal(deliveries.length, 1, 'one delivery in the inbox');
  const delivery = deliveries[0];
  const acked = await unary(exchange, 'Ack', { unit_code: env.KYSO_TO, delivery_ids: [delivery.delivery_id] });
  await unary(exchange, 'UpdateStatus', {
    document_id: delivery.document_id, from_unit: delivery.from_unit, unit_code: env.KYSO_TO, status_code: '03',
  });
  const tracked = await unary(exchange, 'Track', { document_id: sent.document_id, from_unit: env.KYSO_FROM });
  result.exchange = {
    document_id: sent.document_id,
    resent_document_id: resent.document_id,
    resent_package: resent.package.ref.ref === sent.package.ref.ref,
    sent_states: sent.recipients.map((r) => r.state),
    delivery: { document_id: delivery.document_id, subject: delivery.subject, from_unit: delivery.from_unit },
    acknowledged: acked.acknowledged,
    tracked: tracked.recipients.map((r) => ({ unit: r.unit_code, state: r.state, status_code: r.status_code })),
    track_subject: tracked.subject,
  };

  // error cases
  result.errors = {
    no_token: await refused(() => unary(directory, 'GetUnit', { code: env.KYSO_FROM }, auth(''))),
    bad_token: await refused(() => unary(directory, 'GetUnit', { code: env.KYSO_FROM }, auth('not-a-token'))),
    unknown_key: await refused(() => unary(signing, 'SignPdf', { document: { content: pdf }, key_alias: 'no-such-key' })),
    not_a_pdf: await refused(() => unary(signing, 'SignPdf', { document: { content: Buffer.from('hello') }, key_alias: 'seal' })),
    missing_page: await refused(() =>
      unary(signing, 'SignPdf', {
        document: { content: pdf }, key_alias: 'seal', appearance: 'APPEARANCE_TEXT',
        placement: { rect: { page: 9, x1: 10, y1: 10, x2: 200, y2: 80 } },
      }),
    ),
    bad_ref: await refused(() => serverStream(documents, 'Download', { ref: { ref: 'sha256/xyz' } })),
    unknown_ref: await refused(() => serverStream(documents, 'Download', { ref: { ref: `sha256/${'0'.repeat(64)}` } })),
    hash_mismatch: await refused(() => upload(pdf, 'x.pdf', '0'.repeat(64))),
    bad_unit: await refused(() =>
      unary(exchange, 'Send', { from_unit: 'not-a-unit', to_units: [env.KYSO_TO], fields: { subject: 'x' } }),
    ),
    too_large_inline: await refused(() =>
      unary(signing, 'SignPdf', { document: { content: Buffer.alloc(5 * 1024 * 1024) }, key_alias: 'seal' }),
    ),
    conflicting_send: await refused(() =>
      unary(exchange, 'Send', { ...sendRequest, fields: { ...sendRequest.fields, subject: 'Khác' } }),
    ),
    bad_status: await refused(() =>
      unary(exchange, 'UpdateStatus', {
        document_id: delivery.document_id, from_unit: delivery.from_unit, unit_code: env.KYSO_TO, status_code: '99',
      }),
    ),
  };
  process.stdout.write(JSON.stringify(result));
}

main()
  .catch((err) => {
    process.stderr.write(`${err.stack || err}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const stub of [signing, verification, documents, exchange, directory]) stub.close();
  });
