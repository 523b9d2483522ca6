/// Lines of a text file, as sentences for the tokenizer.
public enum TextLines {
    /// The lines of `text` that hold more than whitespace. A line ends at `\n`, `\r\n` or `\r`
    /// (Unix, Windows and old Mac files alike): the split is on Unicode scalars, since in a
    /// `String` the pair `\r\n` is one `Character` that a split on `"\n"` would miss.
    public static func nonEmpty(of text: String) -> [String] {
        text.unicodeScalars.split(omittingEmptySubsequences: true) { $0 == "\n" || $0 == "\r" }
            .map { String(Substring($0)) }
            .filter { line in line.unicodeScalars.contains { !$0.properties.isWhitespace } }
    }
}
