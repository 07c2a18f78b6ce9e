// @signpdf/signpdf 3 as the interoperability corpus uses it (tests/interop/tools.py):
//   node sign.js IN OUT P12 PASSWORD [cades]
// adds a signature placeholder with @signpdf/placeholder-plain (a new invisible field, an
// incremental update) and signs it with the PKCS#12 key through @signpdf/signer-p12.
'use strict';
const fs = require('fs');
const { plainAddPlaceholder } = require('@signpdf/placeholder-plain');
const { P12Signer } = require('@signpdf/signer-p12');
const { SUBFILTER_ADOBE_PKCS7_DETACHED, SUBFILTER_ETSI_CADES_DETACHED } = require('@signpdf/utils');
const signpdf = require('@signpdf/signpdf').default;

async function main() {
  const [input, output, p12, passphrase, mode] = process.argv.slice(2);
  const withPlaceholder = plainAddPlaceholder({
    pdfBuffer: fs.readFileSync(input),
    reason: 'Ky duyet van ban',
    contactInfo: 'interop@example.vn',
    name: 'Interop signer (signpdf)',
    location: 'Ha Long',
    signatureLength: 16384,
    subFilter: mode === 'cades' ? SUBFILTER_ETSI_CADES_DETACHED : SUBFILTER_ADOBE_PKCS7_DETACHED,
  });
  const signer = new P12Signer(fs.readFileSync(p12), { passphrase });
  fs.writeFileSync(output, await signpdf.sign(withPlaceholder, signer));
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : String(error));
  process.exit(1);
});
