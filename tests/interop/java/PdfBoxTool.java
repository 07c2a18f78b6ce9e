// Apache PDFBox 2 (Debian's libpdfbox2-java) with BouncyCastle as the interoperability corpus uses
// it: sign or certify (CMS or CAdES, RSA or P-256, a new invisible field or an existing field) in
// an incremental update, and check signatures the way PDFBox's own examples do.
//
//   sign IN OUT P12 PASSWORD FIELD [opts]   opts: cades, nosigcert (CAdES sub-filter without
//                                           signing-certificate-v2), certify=1|2|3, existing,
//                                           crl=FILE (into the CMS crls field)
//   verify IN ROOT_PEM                      one line per signature or document time-stamp:
//                                           NAME ok|bad whole|part chain-ok|chain-bad
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.KeyStore;
import java.security.MessageDigest;
import java.security.PrivateKey;
import java.security.Security;
import java.security.cert.CertPathBuilder;
import java.security.cert.CertStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.CollectionCertStoreParameters;
import java.security.cert.PKIXBuilderParameters;
import java.security.cert.TrustAnchor;
import java.security.cert.X509CertSelector;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Calendar;
import java.util.Collections;
import java.util.List;
import org.apache.pdfbox.cos.COSArray;
import org.apache.pdfbox.cos.COSDictionary;
import org.apache.pdfbox.cos.COSName;
import org.apache.pdfbox.pdmodel.PDDocument;
import org.apache.pdfbox.pdmodel.interactive.digitalsignature.PDSignature;
import org.apache.pdfbox.pdmodel.interactive.digitalsignature.SignatureInterface;
import org.apache.pdfbox.pdmodel.interactive.digitalsignature.SignatureOptions;
import org.apache.pdfbox.pdmodel.interactive.form.PDSignatureField;
import org.bouncycastle.asn1.ASN1EncodableVector;
import org.bouncycastle.asn1.DERSet;
import org.bouncycastle.asn1.cms.Attribute;
import org.bouncycastle.asn1.cms.AttributeTable;
import org.bouncycastle.asn1.ess.ESSCertIDv2;
import org.bouncycastle.asn1.ess.SigningCertificateV2;
import org.bouncycastle.asn1.nist.NISTObjectIdentifiers;
import org.bouncycastle.asn1.pkcs.PKCSObjectIdentifiers;
import org.bouncycastle.asn1.x509.AlgorithmIdentifier;
import org.bouncycastle.cert.X509CRLHolder;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cert.jcajce.JcaCertStore;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cms.CMSProcessableByteArray;
import org.bouncycastle.cms.CMSSignedData;
import org.bouncycastle.cms.CMSSignedDataGenerator;
import org.bouncycastle.cms.DefaultSignedAttributeTableGenerator;
import org.bouncycastle.cms.SignerInformation;
import org.bouncycastle.cms.jcajce.JcaSignerInfoGeneratorBuilder;
import org.bouncycastle.cms.jcajce.JcaSimpleSignerInfoVerifierBuilder;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.tsp.TimeStampToken;
import org.bouncycastle.operator.jcajce.JcaDigestCalculatorProviderBuilder;

public class PdfBoxTool implements SignatureInterface {
    private final PrivateKey key;
    private final Certificate[] chain;
    private final boolean sigcert;
    private final byte[] crl;

    PdfBoxTool(PrivateKey key, Certificate[] chain, boolean sigcert, byte[] crl) {
        this.key = key;
        this.chain = chain;
        this.sigcert = sigcert;
        this.crl = crl;
    }

    public static void main(String[] args) throws Exception {
        Security.addProvider(new BouncyCastleProvider());
        switch (args[0]) {
            case "sign": sign(args); break;
            case "verify": verify(args[1], args[2]); break;
            default: throw new IllegalArgumentException("unknown command " + args[0]);
        }
    }

    @Override
    public byte[] sign(InputStream content) throws java.io.IOException {
        try {
            X509Certificate cert = (X509Certificate) chain[0];
            String algorithm = key.getAlgorithm().equals("EC") ? "SHA256withECDSA" : "SHA256withRSA";
            JcaSignerInfoGeneratorBuilder info = new JcaSignerInfoGeneratorBuilder(
                    new JcaDigestCalculatorProviderBuilder().setProvider("BC").build());
            if (sigcert) {
                byte[] hash = MessageDigest.getInstance("SHA-256").digest(cert.getEncoded());
                SigningCertificateV2 v2 = new SigningCertificateV2(new ESSCertIDv2[] {
                        new ESSCertIDv2(new AlgorithmIdentifier(NISTObjectIdentifiers.id_sha256), hash)});
                ASN1EncodableVector attrs = new ASN1EncodableVector();
                attrs.add(new Attribute(PKCSObjectIdentifiers.id_aa_signingCertificateV2, new DERSet(v2)));
                info.setSignedAttributeGenerator(new DefaultSignedAttributeTableGenerator(new AttributeTable(attrs)));
            }
            CMSSignedDataGenerator generator = new CMSSignedDataGenerator();
            generator.addSignerInfoGenerator(info.build(
                    new JcaContentSignerBuilder(algorithm).setProvider("BC").build(key), cert));
            generator.addCertificates(new JcaCertStore(Arrays.asList(chain)));
            if (crl != null) generator.addCRL(new X509CRLHolder(crl));
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            content.transferTo(bytes);
            return generator.generate(new CMSProcessableByteArray(bytes.toByteArray()), false).getEncoded();
        } catch (java.io.IOException e) {
            throw e;
        } catch (Exception e) {
            throw new java.io.IOException(e);
        }
    }

    static void sign(String[] args) throws Exception {
        String in = args[1], out = args[2], p12 = args[3], password = args[4], field = args[5];
        boolean cades = false, nosigcert = false, existing = false;
        int certify = 0;
        byte[] crl = null;
        for (int i = 6; i < args.length; i++) {
            String opt = args[i];
            if (opt.equals("cades")) cades = true;
            else if (opt.equals("nosigcert")) nosigcert = true;
            else if (opt.equals("existing")) existing = true;
            else if (opt.startsWith("certify=")) certify = Integer.parseInt(opt.substring(8));
            else if (opt.startsWith("crl=")) crl = Files.readAllBytes(Paths.get(opt.substring(4)));
            else throw new IllegalArgumentException("unknown option " + opt);
        }
        KeyStore ks = KeyStore.getInstance("PKCS12");
        ks.load(new FileInputStream(p12), password.toCharArray());
        String alias = ks.aliases().nextElement();
        PrivateKey key = (PrivateKey) ks.getKey(alias, password.toCharArray());
        Certificate[] chain = ks.getCertificateChain(alias);

        PDDocument doc = PDDocument.load(new File(in));
        PDSignature signature = new PDSignature();
        signature.setFilter(PDSignature.FILTER_ADOBE_PPKLITE);
        signature.setSubFilter(cades ? PDSignature.SUBFILTER_ETSI_CADES_DETACHED
                : PDSignature.SUBFILTER_ADBE_PKCS7_DETACHED);
        signature.setReason("Ky duyet van ban");
        signature.setSignDate(Calendar.getInstance());
        if (certify > 0) certify(doc, signature, certify);
        if (existing) {
            PDSignatureField target = (PDSignatureField) doc.getDocumentCatalog().getAcroForm().getField(field);
            target.getCOSObject().setItem(COSName.V, signature);
        }
        SignatureOptions options = new SignatureOptions();
        options.setPreferredSignatureSize(16384);
        doc.addSignature(signature, new PdfBoxTool(key, chain, cades && !nosigcert, crl), options);
        if (!existing) {
            for (PDSignatureField f : doc.getSignatureFields()) {
                if (f.getSignature() != null && f.getSignature().getCOSObject() == signature.getCOSObject()) {
                    f.setPartialName(field);
                }
            }
        }
        try (FileOutputStream os = new FileOutputStream(out)) {
            doc.saveIncremental(os);
        }
        options.close();
        doc.close();
    }

    // What PDFBox's SigUtils.setMDPPermission example does: a DocMDP reference and /Perms.
    static void certify(PDDocument doc, PDSignature signature, int permission) {
        COSDictionary params = new COSDictionary();
        params.setItem(COSName.TYPE, COSName.getPDFName("TransformParams"));
        params.setInt(COSName.P, permission);
        params.setName(COSName.V, "1.2");
        COSDictionary reference = new COSDictionary();
        reference.setItem(COSName.TYPE, COSName.getPDFName("SigRef"));
        reference.setItem("TransformMethod", COSName.DOCMDP);
        reference.setItem("TransformParams", params);
        COSArray references = new COSArray();
        references.add(reference);
        signature.getCOSObject().setItem("Reference", references);
        COSDictionary catalog = doc.getDocumentCatalog().getCOSObject();
        COSDictionary perms = new COSDictionary();
        perms.setItem(COSName.DOCMDP, signature);
        catalog.setItem(COSName.PERMS, perms);
        catalog.setNeedToBeUpdated(true);
        perms.setNeedToBeUpdated(true);
    }

    static void verify(String in, String rootPem) throws Exception {
        CertificateFactory cf = CertificateFactory.getInstance("X.509");
        X509Certificate root = (X509Certificate) cf.generateCertificate(new FileInputStream(rootPem));
        byte[] all = Files.readAllBytes(Paths.get(in));
        JcaX509CertificateConverter converter = new JcaX509CertificateConverter().setProvider("BC");
        try (PDDocument doc = PDDocument.load(new File(in))) {
            for (PDSignatureField field : doc.getSignatureFields()) {
                PDSignature sig = field.getSignature();
                if (sig == null) continue;
                boolean timestamp = "ETSI.RFC3161".equals(sig.getSubFilter());
                // A document time-stamp encapsulates its TSTInfo; a signature is detached.
                CMSSignedData cms = timestamp ? new CMSSignedData(sig.getContents(all))
                        : new CMSSignedData(new CMSProcessableByteArray(sig.getSignedContent(all)), sig.getContents(all));
                SignerInformation signer = cms.getSignerInfos().getSigners().iterator().next();
                @SuppressWarnings("unchecked")
                X509CertificateHolder holder = (X509CertificateHolder)
                        cms.getCertificates().getMatches(signer.getSID()).iterator().next();
                boolean ok = signer.verify(new JcaSimpleSignerInfoVerifierBuilder().setProvider("BC").build(holder));
                if (ok && timestamp) {
                    TimeStampToken token = new TimeStampToken(cms);
                    String digest = token.getTimeStampInfo().getHashAlgorithm().getAlgorithm().getId();
                    byte[] imprint = MessageDigest.getInstance(digest, "BC").digest(sig.getSignedContent(all));
                    ok = Arrays.equals(imprint, token.getTimeStampInfo().getMessageImprintDigest());
                }
                int[] range = sig.getByteRange();
                boolean whole = range[0] == 0 && (long) range[2] + range[3] == all.length;
                List<X509Certificate> certs = new ArrayList<>();
                for (Object h : cms.getCertificates().getMatches(null)) {
                    certs.add(converter.getCertificate((X509CertificateHolder) h));
                }
                String chain;
                try {
                    X509CertSelector target = new X509CertSelector();
                    target.setCertificate(converter.getCertificate(holder));
                    PKIXBuilderParameters params = new PKIXBuilderParameters(
                            Collections.singleton(new TrustAnchor(root, null)), target);
                    params.setRevocationEnabled(false);
                    params.addCertStore(CertStore.getInstance("Collection", new CollectionCertStoreParameters(certs)));
                    if (sig.getSignDate() != null) params.setDate(sig.getSignDate().getTime());
                    CertPathBuilder.getInstance("PKIX").build(params);
                    chain = "chain-ok";
                } catch (Exception e) {
                    chain = "chain-bad:" + e.getMessage();
                }
                System.out.println(field.getFullyQualifiedName() + " " + (ok ? "ok" : "bad") + " "
                        + (whole ? "whole" : "part") + " " + chain);
            }
        }
    }
}
