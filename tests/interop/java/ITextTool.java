// iText 5 (Debian's libitext5-java) as the interoperability corpus uses it: make a base form,
// sign or certify (CMS or CAdES, visible or invisible, new or existing field), fill a field or
// draw over a page in an unsigned incremental update, and check signatures with iText's own code.
//
//   base OUT                                   a page of text, a text field "hoten", an empty
//                                              signature field "Approval" (visible)
//   sign IN OUT P12 PASSWORD FIELD [opts]      opts: cades, certify=1|2|3, rect=x1,y1,x2,y2,
//                                              existing, crl=FILE
//   fill IN OUT FIELD VALUE                    form filling, append mode
//   overlay IN OUT                             text drawn over page 1, append mode
//   annotate IN OUT                            a text annotation (a note) on page 1, append mode
//   verify IN ROOT_PEM                         one line per signature: NAME ok|bad whole|part
//                                              chain-ok|chain-bad
import com.itextpdf.text.Document;
import com.itextpdf.text.Paragraph;
import com.itextpdf.text.Rectangle;
import com.itextpdf.text.pdf.AcroFields;
import com.itextpdf.text.pdf.PdfAnnotation;
import com.itextpdf.text.pdf.BaseFont;
import com.itextpdf.text.pdf.PdfContentByte;
import com.itextpdf.text.pdf.PdfFormField;
import com.itextpdf.text.pdf.PdfReader;
import com.itextpdf.text.pdf.PdfSignatureAppearance;
import com.itextpdf.text.pdf.PdfStamper;
import com.itextpdf.text.pdf.PdfWriter;
import com.itextpdf.text.pdf.TextField;
import com.itextpdf.text.pdf.security.BouncyCastleDigest;
import com.itextpdf.text.pdf.security.CertificateVerification;
import com.itextpdf.text.pdf.security.CrlClient;
import com.itextpdf.text.pdf.security.CrlClientOffline;
import com.itextpdf.text.pdf.security.ExternalSignature;
import com.itextpdf.text.pdf.security.MakeSignature;
import com.itextpdf.text.pdf.security.PdfPKCS7;
import com.itextpdf.text.pdf.security.PrivateKeySignature;
import com.itextpdf.text.pdf.security.VerificationException;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Security;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Calendar;
import java.util.List;
import org.bouncycastle.jce.provider.BouncyCastleProvider;

public class ITextTool {
    public static void main(String[] args) throws Exception {
        Security.addProvider(new BouncyCastleProvider());
        switch (args[0]) {
            case "base": base(args[1]); break;
            case "sign": sign(args); break;
            case "fill": fill(args[1], args[2], args[3], args[4]); break;
            case "overlay": overlay(args[1], args[2]); break;
            case "annotate": annotate(args[1], args[2]); break;
            case "verify": verify(args[1], args[2]); break;
            default: throw new IllegalArgumentException("unknown command " + args[0]);
        }
    }

    static void base(String out) throws Exception {
        Document doc = new Document();
        PdfWriter writer = PdfWriter.getInstance(doc, new FileOutputStream(out));
        doc.open();
        doc.add(new Paragraph("Quyet dinh so 16/QD-UBND - interoperability corpus"));
        TextField text = new TextField(writer, new Rectangle(72, 600, 300, 620), "hoten");
        writer.addAnnotation(text.getTextField());
        PdfFormField sig = PdfFormField.createSignature(writer);
        sig.setFieldName("Approval");
        sig.setWidget(new Rectangle(320, 500, 540, 560), null);
        sig.setFlags(PdfFormField.FLAGS_PRINT);
        sig.setPage(1);
        writer.addAnnotation(sig);
        doc.close();
    }

    static void sign(String[] args) throws Exception {
        String in = args[1], out = args[2], p12 = args[3], password = args[4], field = args[5];
        boolean cades = false, existing = false;
        int certify = 0;
        float[] rect = null;
        String crl = null;
        for (int i = 6; i < args.length; i++) {
            String opt = args[i];
            if (opt.equals("cades")) cades = true;
            else if (opt.equals("existing")) existing = true;
            else if (opt.startsWith("certify=")) certify = Integer.parseInt(opt.substring(8));
            else if (opt.startsWith("crl=")) crl = opt.substring(4);
            else if (opt.startsWith("rect=")) {
                String[] parts = opt.substring(5).split(",");
                rect = new float[4];
                for (int j = 0; j < 4; j++) rect[j] = Float.parseFloat(parts[j]);
            } else throw new IllegalArgumentException("unknown option " + opt);
        }
        KeyStore ks = KeyStore.getInstance("PKCS12");
        ks.load(new FileInputStream(p12), password.toCharArray());
        String alias = ks.aliases().nextElement();
        PrivateKey key = (PrivateKey) ks.getKey(alias, password.toCharArray());
        Certificate[] chain = ks.getCertificateChain(alias);

        PdfReader reader = new PdfReader(in);
        PdfStamper stamper = PdfStamper.createSignature(reader, new FileOutputStream(out), '\0', null, true);
        PdfSignatureAppearance app = stamper.getSignatureAppearance();
        app.setReason("Ky duyet van ban");
        app.setLocation("Ha Long");
        if (existing) app.setVisibleSignature(field);
        else if (rect != null) app.setVisibleSignature(new Rectangle(rect[0], rect[1], rect[2], rect[3]), 1, field);
        else app.setVisibleSignature(new Rectangle(0, 0, 0, 0), 1, field);
        if (certify == 1) app.setCertificationLevel(PdfSignatureAppearance.CERTIFIED_NO_CHANGES_ALLOWED);
        if (certify == 2) app.setCertificationLevel(PdfSignatureAppearance.CERTIFIED_FORM_FILLING);
        if (certify == 3) app.setCertificationLevel(PdfSignatureAppearance.CERTIFIED_FORM_FILLING_AND_ANNOTATIONS);
        List<CrlClient> crls = null;
        if (crl != null) {
            crls = new ArrayList<>();
            crls.add(new CrlClientOffline(Files.readAllBytes(Paths.get(crl))));
        }
        ExternalSignature signature = new PrivateKeySignature(key, "SHA-256", "BC");
        MakeSignature.signDetached(app, new BouncyCastleDigest(), signature, chain, crls, null, null, 0,
                cades ? MakeSignature.CryptoStandard.CADES : MakeSignature.CryptoStandard.CMS);
    }

    static void fill(String in, String out, String field, String value) throws Exception {
        PdfReader reader = new PdfReader(in);
        PdfStamper stamper = new PdfStamper(reader, new FileOutputStream(out), '\0', true);
        stamper.getAcroFields().setField(field, value);
        stamper.close();
    }

    static void overlay(String in, String out) throws Exception {
        PdfReader reader = new PdfReader(in);
        PdfStamper stamper = new PdfStamper(reader, new FileOutputStream(out), '\0', true);
        PdfContentByte over = stamper.getOverContent(1);
        over.beginText();
        over.setFontAndSize(BaseFont.createFont(), 18);
        over.setTextMatrix(72, 700);
        over.showText("HUY BO - added after signing");
        over.endText();
        stamper.close();
    }

    static void annotate(String in, String out) throws Exception {
        PdfReader reader = new PdfReader(in);
        PdfStamper stamper = new PdfStamper(reader, new FileOutputStream(out), '\0', true);
        stamper.addAnnotation(PdfAnnotation.createText(stamper.getWriter(),
                new Rectangle(400, 700, 420, 720), "Ghi chu", "Da xem", false, "Comment"), 1);
        stamper.close();
    }

    static void verify(String in, String rootPem) throws Exception {
        CertificateFactory cf = CertificateFactory.getInstance("X.509");
        X509Certificate root = (X509Certificate) cf.generateCertificate(new FileInputStream(rootPem));
        KeyStore anchors = KeyStore.getInstance(KeyStore.getDefaultType());
        anchors.load(null, null);
        anchors.setCertificateEntry("root", root);
        PdfReader reader = new PdfReader(in);
        AcroFields fields = reader.getAcroFields();
        for (String name : fields.getSignatureNames()) {
            PdfPKCS7 pkcs7 = fields.verifySignature(name, "BC");
            boolean ok = pkcs7.verify();
            // A document time-stamp (isTsp) is its own token: verify() already compared its imprint
            // with the document; a signature's time-stamp must cover the signature value.
            if (ok && !pkcs7.isTsp() && pkcs7.getTimeStampToken() != null) ok = pkcs7.verifyTimestampImprint();
            boolean whole = fields.signatureCoversWholeDocument(name);
            Calendar when = pkcs7.getTimeStampToken() != null ? pkcs7.getTimeStampDate() : pkcs7.getSignDate();
            List<VerificationException> problems = CertificateVerification.verifyCertificates(
                    pkcs7.getSignCertificateChain(), anchors, null, when);
            System.out.println(name + " " + (ok ? "ok" : "bad") + " " + (whole ? "whole" : "part")
                    + " " + (problems.isEmpty() ? "chain-ok" : "chain-bad:" + problems));
        }
    }
}
