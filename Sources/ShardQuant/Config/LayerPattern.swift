import ShardNN

/// A dotted layer path with wildcards, as config files write name rules: `*` as a whole segment
/// matches exactly one segment (`blocks.*.ffn.down`), `**` matches any number of segments,
/// including none (`blocks.**`), and `*` inside a segment matches any characters within that
/// segment (`fc*`, `layer.*.attention.self.*`). A pattern without wildcards is an exact path.
public struct LayerPattern: Sendable, Equatable, CustomStringConvertible {
    public let text: String
    private let segments: [String]

    /// Why a pattern is malformed.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case empty
        case emptySegment
        case mixedDoubleStar(String)

        public var description: String {
            switch self {
            case .empty: return "a layer pattern must not be empty"
            case .emptySegment: return "a layer pattern must not have an empty segment (two dots in a row, or a dot at either end)"
            case .mixedDoubleStar(let segment): return "\"**\" must be a whole segment, got \"\(segment)\""
            }
        }
    }

    public init(_ text: String) throws(Failure) {
        guard !text.isEmpty else { throw .empty }
        let segments = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        for segment in segments {
            if segment.isEmpty { throw .emptySegment }
            if segment != "**" && segment.contains("**") { throw .mixedDoubleStar(segment) }
        }
        self.text = text
        self.segments = segments
    }

    public var description: String { text }

    /// Whether the pattern has any wildcard (otherwise it names one path exactly).
    public var isExact: Bool { !text.contains("*") }

    /// Whether `path` (dotted) matches the whole pattern.
    public func matches(_ path: String) -> Bool {
        let parts = path.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        // Positions reachable in `parts` after each pattern segment (a small NFA over segments).
        var positions: Set<Int> = [0]
        for segment in segments {
            var next: Set<Int> = []
            for position in positions {
                if segment == "**" {
                    next.formUnion(position...parts.count)
                } else if position < parts.count && Self.segmentMatches(segment, parts[position]) {
                    next.insert(position + 1)
                }
            }
            positions = next
            if positions.isEmpty { return false }
        }
        return positions.contains(parts.count)
    }

    /// The paths of `model`'s sublayers that match, in model order.
    public func matchingPaths(in model: Layer) -> [String] {
        model.namedSublayers().map(\.path).filter(matches)
    }

    /// One segment against a pattern segment in which `*` matches any run of characters.
    static func segmentMatches(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern), t = Array(text)
        var i = 0, j = 0, star = -1, mark = 0
        while j < t.count {
            if i < p.count && p[i] != "*" && p[i] == t[j] {
                i += 1; j += 1
            } else if i < p.count && p[i] == "*" {
                star = i; mark = j; i += 1
            } else if star >= 0 {
                i = star + 1; mark += 1; j = mark
            } else {
                return false
            }
        }
        while i < p.count && p[i] == "*" { i += 1 }
        return i == p.count
    }
}
