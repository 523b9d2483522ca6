import Foundation

/// Finds an object key that a JSON document repeats, which JSON parsers accept silently (keeping
/// the first or the last). Runs on a document that already parsed, so only the structure matters:
/// strings (with their escapes), `{`, `}`, `[`, `]`, `,` and `:`.
enum DuplicateKeyScanner {
    /// The first repeated key as a dotted path into the document (`rules[1].observer`) and its line.
    static func firstDuplicate(in data: Data) -> (key: String, line: Int)? {
        let bytes = [UInt8](data)
        /// An open container: an object's keys so far (nil for an array), its path, the index of
        /// the next array element, and whether the next string of an object is a key.
        struct Container {
            var keys: Set<String>?
            var path: String
            var index = 0
            var expectsKey = true
            var lastKey = ""
        }
        var stack: [Container] = []
        var line = 1
        var position = 0
        func childPath() -> String {
            guard let top = stack.last else { return "" }
            if top.keys == nil { return "\(top.path)[\(top.index)]" }
            return top.path.isEmpty ? top.lastKey : top.path + "." + top.lastKey
        }
        while position < bytes.count {
            let byte = bytes[position]
            switch byte {
            case UInt8(ascii: "\n"): line += 1
            case UInt8(ascii: "{"):
                stack.append(Container(keys: [], path: childPath()))
            case UInt8(ascii: "["):
                stack.append(Container(keys: nil, path: childPath()))
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                _ = stack.popLast()
            case UInt8(ascii: ","):
                if stack.last?.keys != nil { stack[stack.count - 1].expectsKey = true } else if !stack.isEmpty { stack[stack.count - 1].index += 1 }
            case UInt8(ascii: "\""):
                let (text, end) = string(bytes, from: position)
                if let top = stack.last, top.keys != nil, top.expectsKey {
                    if top.keys!.contains(text) {
                        return (top.path.isEmpty ? text : top.path + "." + text, line)
                    }
                    stack[stack.count - 1].keys!.insert(text)
                    stack[stack.count - 1].lastKey = text
                    stack[stack.count - 1].expectsKey = false
                }
                position = end
            default: break
            }
            position += 1
        }
        return nil
    }

    /// The string starting at the quote at `start`, unescaped, and the index of its closing quote.
    private static func string(_ bytes: [UInt8], from start: Int) -> (String, Int) {
        var scalars = String.UnicodeScalarView()
        var utf8: [UInt8] = []
        var position = start + 1
        func flush() {
            scalars.append(contentsOf: String(decoding: utf8, as: UTF8.self).unicodeScalars)
            utf8.removeAll()
        }
        func hex(at index: Int) -> UInt32? {
            guard index + 4 <= bytes.count else { return nil }
            return UInt32(String(decoding: bytes[index..<index + 4], as: UTF8.self), radix: 16)
        }
        while position < bytes.count && bytes[position] != UInt8(ascii: "\"") {
            guard bytes[position] == UInt8(ascii: "\\"), position + 1 < bytes.count else {
                utf8.append(bytes[position])
                position += 1
                continue
            }
            flush()
            let escaped = bytes[position + 1]
            position += 2
            switch escaped {
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "b"): scalars.append("\u{8}")
            case UInt8(ascii: "f"): scalars.append("\u{C}")
            case UInt8(ascii: "u"):
                guard var code = hex(at: position) else { continue }
                position += 4
                // A surrogate pair spells one scalar.
                if (0xD800..<0xDC00).contains(code), position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"),
                   bytes[position + 1] == UInt8(ascii: "u"), let low = hex(at: position + 2), (0xDC00..<0xE000).contains(low) {
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    position += 6
                }
                scalars.append(Unicode.Scalar(code) ?? "\u{FFFD}")
            default: scalars.append(Unicode.Scalar(escaped))
            }
        }
        flush()
        return (String(scalars), position)
    }
}
