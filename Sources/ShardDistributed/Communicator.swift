/// A reduction applied elementwise across the ranks of a communicator.
public enum ReduceOperation: String, Sendable {
    case sum, maximum, minimum
}

/// A collective operation that failed, or a peer that failed first.
public struct CommunicatorError: Error, CustomStringConvertible, Equatable {
    /// The operation (`MPI_Allreduce`, `allGather`, …).
    public let operation: String
    /// The library's message, or the failing peer's message.
    public let message: String
    /// The rank that failed, when a peer's failure ended the operation.
    public let failedRank: Int?

    public init(operation: String, message: String, failedRank: Int? = nil) {
        self.operation = operation
        self.message = message
        self.failedRank = failedRank
    }

    public var description: String {
        if let failedRank { return "rank \(failedRank) failed: \(message)" }
        return "\(operation) failed: \(message)"
    }
}

/// A group of ranks that run collectives together (MPI's communicator).
///
/// Every rank of a group calls every collective in the same order with buffers of the same length
/// (variable-length only where documented). Implementations: ``SingleProcessCommunicator`` (one
/// rank), ``ThreadGroupCommunicator`` (ranks as threads of one process, for tests), and
/// ``MPICommunicator`` (Open MPI, under `mpirun`).
public protocol Communicator: AnyObject, Sendable {
    /// This rank's index in the group, `0..<size`.
    var rank: Int { get }
    /// The number of ranks.
    var size: Int { get }
    /// Elementwise reduction across the ranks, in place.
    func allReduce(_ buffer: inout [Float], _ operation: ReduceOperation) throws(CommunicatorError)
    /// Elementwise reduction across the ranks, in place.
    func allReduce(_ buffer: inout [Double], _ operation: ReduceOperation) throws(CommunicatorError)
    /// Elementwise reduction across the ranks, in place.
    func allReduce(_ buffer: inout [Int64], _ operation: ReduceOperation) throws(CommunicatorError)
    /// Every rank's bytes (any length per rank), in rank order.
    func allGather(bytes: [UInt8]) throws(CommunicatorError) -> [[UInt8]]
    /// Replaces every rank's bytes with `root`'s.
    func broadcast(bytes: inout [UInt8], root: Int) throws(CommunicatorError)
    /// Waits until every rank arrives.
    func barrier() throws(CommunicatorError)
    /// Sub-groups of the ranks with equal `color`, ordered by `key` (a collective).
    func split(color: Int, key: Int) throws(CommunicatorError) -> Communicator
    /// Ends the whole job after a failure that cannot be agreed on (MPI: `MPI_Abort`).
    func abort(_ message: String) -> Never
}

extension Communicator {
    /// Every rank's `Float` values (any length per rank), in rank order.
    public func allGather(_ values: [Float]) throws(CommunicatorError) -> [[Float]] {
        let raw = values.withUnsafeBytes { Array($0) }
        return try allGather(bytes: raw).map { bytes in
            bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
    }

    /// Every rank's `Int128` values, in rank order.
    public func allGather(_ values: [Int128]) throws(CommunicatorError) -> [[Int128]] {
        let raw = values.withUnsafeBytes { Array($0) }
        return try allGather(bytes: raw).map { bytes in
            stride(from: 0, to: bytes.count, by: 16).map { offset in
                bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: Int128.self) }
            }
        }
    }

    /// The elementwise sum of every rank's `Int128` values: gathered, then added in rank order
    /// (integer addition, so the order does not matter).
    public func allReduceSum(_ buffer: inout [Int128]) throws(CommunicatorError) {
        if size == 1 { return }
        let all = try allGather(buffer)
        for index in buffer.indices { buffer[index] = all.reduce(0) { $0 + $1[index] } }
    }
}
