// One JVM for the whole test session: reads commands from stdin, one per line, arguments
// separated by tabs ("ITextTool<TAB>sign<TAB>in.pdf…"), runs ITextTool or PdfBoxTool on them and
// answers "OK <n>" followed by the n lines the command printed, or "ERR <message>". Starting a
// JVM and loading PDFBox, iText and BouncyCastle costs more than most commands.
import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

public class ToolServer {
    public static void main(String[] args) throws Exception {
        PrintStream out = System.out;
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String[] parts = line.split("\t", -1);
            String[] rest = Arrays.copyOfRange(parts, 1, parts.length);
            ByteArrayOutputStream captured = new ByteArrayOutputStream();
            System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8));
            String answer;
            try {
                if (parts[0].equals("ITextTool")) ITextTool.main(rest);
                else if (parts[0].equals("PdfBoxTool")) PdfBoxTool.main(rest);
                else throw new IllegalArgumentException("unknown program " + parts[0]);
                String text = captured.toString(StandardCharsets.UTF_8);
                String[] lines = text.isEmpty() ? new String[0] : text.split("\n");
                answer = "OK " + lines.length + (lines.length > 0 ? "\n" + String.join("\n", lines) : "");
            } catch (Throwable e) {
                answer = "ERR " + e.toString().replace('\n', ' ');
            } finally {
                System.setOut(out);
            }
            out.println(answer);
            out.flush();
        }
    }
}
