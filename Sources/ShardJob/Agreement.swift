import Foundation
import ShardDistributed
import ShardExport

/// Agreement on failures among the ranks of a job (DESIGN.md §3): every rank runs the same body,
/// then learns whether any rank's body failed, so no rank is left waiting in a collective that a
/// failed rank will never reach.
public struct Agreement {
    public let world: Communicator
    /// An error's exit code (the largest of the failed ranks' is the job's).
    public let exitCode: (Error) -> Int32

    public init(world: Communicator, exitCode: @escaping (Error) -> Int32) {
        self.world = world
        self.exitCode = exitCode
    }

    /// Runs `body`, then all-reduces a failure flag; on failure every rank's message is gathered
    /// and every rank throws the same ``AgreedFailure`` with the largest of the failed ranks'
    /// exit codes. An ``AgreedFailure`` from an agreement inside `body` (which every rank throws
    /// at once) passes through as it is.
    public func callAsFunction(_ body: () throws -> Void) throws {
        var message = ""
        var code: Int64 = 0
        do { try body() } catch let agreed as AgreedFailure {
            throw agreed
        } catch {
            message = "\(error)"
            code = Int64(Swift.max(exitCode(error), 1))
            if message.isEmpty { message = "\(type(of: error))" }
        }
        var flag: [Int64] = [code]
        try world.allReduce(&flag, .maximum)
        guard flag[0] != 0 else { return }
        let messages = try world.allGather(bytes: Array(message.utf8)).map { String(decoding: $0, as: UTF8.self) }
        throw AgreedFailure(messages: Array(messages.enumerated()).map { ($0.offset, $0.element) }, code: Int32(flag[0]))
    }

    /// Refuses to start when the ranks were launched as different jobs: every rank's fingerprint
    /// of each part of its identity (its arguments, the config file's bytes, each input file's
    /// contents, the executable's contents) is gathered and compared, and every rank throws the
    /// same ``AgreedFailure`` (exit code `code`) naming the odd ranks and the parts that differ.
    /// On several hosts the same path can hold different files: the contents are compared.
    public func checkSameJob(identity parts: [(name: String, identity: Data)], code: Int32) throws {
        guard world.size > 1 else { return }
        let local = parts.map { fingerprint($0.identity) }.joined(separator: ",")
        let fingerprints = try world.allGather(bytes: Array(local.utf8)).map { String(decoding: $0, as: UTF8.self) }
        let odd = fingerprints.indices.filter { fingerprints[$0] != fingerprints[0] }
        if !odd.isEmpty {
            let ranks = odd.map(String.init).joined(separator: ", ")
            let first = fingerprints[0].split(separator: ",", omittingEmptySubsequences: false)
            var differing: [String] = []
            for rank in odd {
                let other = fingerprints[rank].split(separator: ",", omittingEmptySubsequences: false)
                for (index, part) in parts.enumerated() where index >= first.count || index >= other.count || first[index] != other[index] {
                    if !differing.contains(part.name) { differing.append(part.name) }
                }
            }
            throw AgreedFailure(messages: [(0, "rank(s) \(ranks) were started with other arguments, another --config file, other input files or another binary than rank 0; every rank must run the same job (different: \(differing.joined(separator: ", ")))")],
                                code: code)
        }
    }

    /// ``checkSameJob(identity:code:)`` with one part.
    public func checkSameJob(identity: Data, code: Int32) throws {
        try checkSameJob(identity: [("job", identity)], code: code)
    }
}

/// A failure every rank knows about, with each rank's message (empty for ranks that did not fail)
/// and the exit code.
public struct AgreedFailure: Error {
    public let messages: [(Int, String)]
    public var code: Int32 = 1

    public init(messages: [(Int, String)], code: Int32 = 1) {
        self.messages = messages
        self.code = code
    }

    /// The lines rank 0 prints: the same message from every rank once, otherwise each failed
    /// rank's message prefixed with its rank.
    public func lines(worldSize: Int) -> [String] {
        let failed = messages.filter { !$0.1.isEmpty }
        let same = failed.count == worldSize && Set(failed.map(\.1)).count == 1
        return (same ? Array(failed.prefix(1)) : failed).map { rank, text in
            let prefix = worldSize > 1 && !same && !text.hasPrefix("rank(s)") ? "rank \(rank): " : ""
            return "Error: \(prefix)\(text)"
        }
    }
}
