import Foundation
import ShardTensor

/// N ranks as threads of one process, for testing multi-rank logic under `swift test`.
///
/// Collectives exchange values through a shared room guarded by a condition variable. When one
/// rank fails (``ThreadGroup/run(size:_:)`` catches its error), every pending and later collective
/// of every rank throws a ``CommunicatorError`` naming that rank, so no thread waits forever.
public final class ThreadGroupCommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public var size: Int { room.size }
    let room: ExchangeRoom
    /// Records this rank's abort with its thread group runner (so the runner does not wait for it).
    let onAbort: @Sendable (String) -> Void

    init(rank: Int, room: ExchangeRoom, onAbort: @escaping @Sendable (String) -> Void) {
        self.rank = rank
        self.room = room
        self.onAbort = onAbort
    }

    func exchange<Value>(_ value: Value, _ operation: String) throws(CommunicatorError) -> [Value] {
        try room.exchange(rank: rank, value: value, operation: operation).map { $0 as! Value }
    }

    private func reduce<Value>(_ buffer: inout [Value], _ operation: ReduceOperation, name: String,
                               _ combine: (Value, Value) -> Value) throws(CommunicatorError) {
        let all = try exchange(buffer, name)
        guard all.allSatisfy({ $0.count == buffer.count }) else {
            throw CommunicatorError(operation: name, message: "ranks passed buffers of different lengths \(all.map(\.count))")
        }
        for index in buffer.indices {
            var value = all[0][index]
            for other in all.dropFirst() { value = combine(value, other[index]) }
            buffer[index] = value
        }
    }

    public func allReduce(_ buffer: inout [Float], _ operation: ReduceOperation) throws(CommunicatorError) {
        try reduce(&buffer, operation, name: "allReduce") { a, b in
            switch operation {
            case .sum: return a + b
            case .maximum: return a.isNaN || b.isNaN ? .nan : Swift.max(a, b)
            case .minimum: return a.isNaN || b.isNaN ? .nan : Swift.min(a, b)
            }
        }
    }

    public func allReduce(_ buffer: inout [Double], _ operation: ReduceOperation) throws(CommunicatorError) {
        try reduce(&buffer, operation, name: "allReduce") { a, b in
            switch operation {
            case .sum: return a + b
            case .maximum: return Swift.max(a, b)
            case .minimum: return Swift.min(a, b)
            }
        }
    }

    public func allReduce(_ buffer: inout [Int64], _ operation: ReduceOperation) throws(CommunicatorError) {
        try reduce(&buffer, operation, name: "allReduce") { a, b in
            switch operation {
            case .sum: return a &+ b
            case .maximum: return Swift.max(a, b)
            case .minimum: return Swift.min(a, b)
            }
        }
    }

    public func allGather(bytes: [UInt8]) throws(CommunicatorError) -> [[UInt8]] {
        try exchange(bytes, "allGather")
    }

    public func broadcast(bytes: inout [UInt8], root: Int) throws(CommunicatorError) {
        bytes = try exchange(bytes, "broadcast")[root]
    }

    public func barrier() throws(CommunicatorError) {
        _ = try exchange(0, "barrier")
    }

    public func split(color: Int, key: Int) throws(CommunicatorError) -> Communicator {
        let all = try exchange((color, key, rank), "split")
        let members = all.filter { $0.0 == color }.sorted { ($0.1, $0.2) < ($1.1, $1.2) }
        let leader = members.map(\.2).min()!
        // The leader of each colour makes the sub-group's room; a second exchange hands it out.
        let made: ExchangeRoom? = leader == rank ? ExchangeRoom(size: members.count, parent: room) : nil
        let rooms = try exchange(made, "split")
        guard let shared = rooms[leader] else {
            throw CommunicatorError(operation: "split", message: "no room from leader \(leader)")
        }
        return ThreadGroupCommunicator(rank: members.firstIndex { $0.2 == rank }!, room: shared, onAbort: onAbort)
    }

    /// Fails the group (every rank's collectives throw) and ends this rank's thread; the runner
    /// reports the message as this rank's error. (A thread cannot end the process as `MPI_Abort` does.)
    public func abort(_ message: String) -> Never {
        room.fail(rank: rank, message: message)
        onAbort(message)
        Thread.exit()
        fatalError("unreachable")
    }
}

/// The meeting point of one thread group's collectives.
final class ExchangeRoom: @unchecked Sendable {
    let size: Int
    private let condition = NSCondition()
    private var slots: [Any?]
    private var arrived = 0
    private var generation = 0
    private var lastResult: [Any] = []
    private var failure: (rank: Int, message: String)?
    private weak var parent: ExchangeRoom?
    private var children: [ExchangeRoom] = []

    init(size: Int, parent: ExchangeRoom? = nil) {
        self.size = size
        slots = Array(repeating: nil, count: size)
        self.parent = parent
        parent?.adopt(self)
    }

    private func adopt(_ child: ExchangeRoom) {
        condition.lock()
        children.append(child)
        let inherited = failure
        condition.unlock()
        if let inherited { child.fail(rank: inherited.rank, message: inherited.message) }
    }

    /// Deposits `value`, waits for every rank, returns all values in rank order.
    func exchange(rank: Int, value: Any, operation: String) throws(CommunicatorError) -> [Any] {
        condition.lock()
        defer { condition.unlock() }
        if let failure { throw CommunicatorError(operation: operation, message: failure.message, failedRank: failure.rank) }
        let mine = generation
        slots[rank] = value
        arrived += 1
        if arrived == size {
            lastResult = slots.map { $0! }
            slots = Array(repeating: nil, count: size)
            arrived = 0
            generation += 1
            condition.broadcast()
            return lastResult
        }
        while generation == mine && failure == nil { condition.wait() }
        if generation == mine, let failure {
            throw CommunicatorError(operation: operation, message: failure.message, failedRank: failure.rank)
        }
        return lastResult
    }

    /// Fails every pending and later collective of this room and its sub-groups.
    func fail(rank: Int, message: String) {
        condition.lock()
        if failure == nil { failure = (rank, message) }
        let subgroups = children
        condition.broadcast()
        condition.unlock()
        for child in subgroups { child.fail(rank: rank, message: message) }
        parent?.failFromChild(rank: rank, message: message)
    }

    private func failFromChild(rank: Int, message: String) {
        condition.lock()
        let already = failure != nil
        condition.unlock()
        if !already { fail(rank: rank, message: message) }
    }
}

/// Runs `body` once per rank, each on its own thread, with a shared in-process communicator.
public enum ThreadGroup {
    /// The error a rank threw, with its rank.
    public struct RankFailure: Error, CustomStringConvertible {
        public let rank: Int
        public let error: Error
        public var description: String { "rank \(rank): \(error)" }
    }

    /// Runs `body(communicator)` on `size` threads and returns each rank's result in rank order.
    /// When a rank throws, every other rank's collectives fail too, and the first rank's error
    /// (not the consequential failures) is rethrown.
    public static func run<Result>(size: Int, _ body: @escaping @Sendable (Communicator) throws -> Result) throws -> [Result] {
        precondition(size > 0, "a thread group needs at least one rank")
        let room = ExchangeRoom(size: size)
        let results = ResultSlots<Result>(size: size)
        // Every rank runs in the caller's execution context (reproducible mode, threads) and
        // counts its collectives in the caller's tally.
        let context = ExecutionContext.current, counters = CollectiveCounters.current
        let threads = (0..<size).map { rank in
            Thread { ExecutionContext.with(context) { CollectiveCounters.with(counters) {
                let communicator = ThreadGroupCommunicator(rank: rank, room: room) { message in
                    results.set(rank, .failure(CommunicatorError(operation: "abort", message: message)))
                    results.finish()
                }
                do {
                    results.set(rank, .success(try body(communicator)))
                } catch {
                    results.set(rank, .failure(error))
                    room.fail(rank: rank, message: "\(error)")
                }
                results.finish()
            } } }
        }
        for thread in threads {
            thread.stackSize = 16 << 20
            thread.start()
        }
        results.waitForAll()
        var values: [Result] = []
        var firstFailure: RankFailure?
        for rank in 0..<size {
            switch results.value(rank) {
            case .success(let value): values.append(value)
            case .failure(let error):
                let isConsequence = (error as? CommunicatorError)?.failedRank.map { $0 != rank } ?? false
                if firstFailure == nil || (!isConsequence && (firstFailure!.error as? CommunicatorError)?.failedRank != nil) {
                    firstFailure = RankFailure(rank: rank, error: error)
                }
            case nil: firstFailure = firstFailure ?? RankFailure(rank: rank, error: CommunicatorError(operation: "run", message: "rank ended without a result"))
            }
        }
        if let firstFailure { throw firstFailure }
        return values
    }
}

/// Per-rank results written by the rank threads and read after all finish.
final class ResultSlots<Result>: @unchecked Sendable {
    private let condition = NSCondition()
    private var results: [Swift.Result<Result, Error>?]
    private var finished = 0

    init(size: Int) { results = Array(repeating: nil, count: size) }

    func set(_ rank: Int, _ result: Swift.Result<Result, Error>) {
        condition.lock()
        results[rank] = result
        condition.unlock()
    }

    func finish() {
        condition.lock()
        finished += 1
        condition.broadcast()
        condition.unlock()
    }

    func waitForAll() {
        condition.lock()
        while finished < results.count { condition.wait() }
        condition.unlock()
    }

    func value(_ rank: Int) -> Swift.Result<Result, Error>? {
        condition.lock()
        defer { condition.unlock() }
        return results[rank]
    }
}
