// The only file that imports CMPI.
import CMPI
import Foundation

/// Open MPI, for processes started by `mpirun`. MPI is initialised once per process
/// (`MPI_Init_thread`, at least `MPI_THREAD_SERIALIZED`) with errors returned instead of aborting,
/// every failed call becomes a ``CommunicatorError`` with the call's name and
/// `MPI_Error_string`, and MPI is finalised once at exit.
public final class MPICommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    private let handle: MPI_Comm

    /// Whether this process was started by Open MPI's launcher.
    public static var isLaunchedByMPI: Bool {
        ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] != nil
    }

    /// The world communicator (initialises MPI on first use).
    public static func world() throws(CommunicatorError) -> MPICommunicator {
        try MPIRuntime.shared.initialize()
        return try MPICommunicator(handle: shardquant_mpi_comm_world())
    }

    private init(handle: MPI_Comm) throws(CommunicatorError) {
        self.handle = handle
        var rank: Int32 = 0, size: Int32 = 0
        try MPICommunicator.check(MPI_Comm_rank(handle, &rank), "MPI_Comm_rank")
        try MPICommunicator.check(MPI_Comm_size(handle, &size), "MPI_Comm_size")
        self.rank = Int(rank)
        self.size = Int(size)
    }

    private func check(_ code: Int32, _ call: String) throws(CommunicatorError) {
        try MPICommunicator.check(code, call)
    }

    private static func check(_ code: Int32, _ call: String) throws(CommunicatorError) {
        if code != shardquant_mpi_success() { throw CommunicatorError(operation: call, message: MPIRuntime.errorString(code)) }
    }

    private func operation(_ operation: ReduceOperation) -> MPI_Op {
        switch operation {
        case .sum: return shardquant_mpi_sum()
        case .maximum: return shardquant_mpi_max()
        case .minimum: return shardquant_mpi_min()
        }
    }

    public func allReduce(_ buffer: inout [Float], _ operation: ReduceOperation) throws(CommunicatorError) {
        let op = self.operation(operation)
        let code = buffer.withUnsafeMutableBytes { MPI_Allreduce(shardquant_mpi_in_place(), $0.baseAddress, Int32($0.count / 4), shardquant_mpi_float(), op, handle) }
        try check(code, "MPI_Allreduce")
    }

    public func allReduce(_ buffer: inout [Double], _ operation: ReduceOperation) throws(CommunicatorError) {
        let op = self.operation(operation)
        let code = buffer.withUnsafeMutableBytes { MPI_Allreduce(shardquant_mpi_in_place(), $0.baseAddress, Int32($0.count / 8), shardquant_mpi_double(), op, handle) }
        try check(code, "MPI_Allreduce")
    }

    public func allReduce(_ buffer: inout [Int64], _ operation: ReduceOperation) throws(CommunicatorError) {
        let op = self.operation(operation)
        let code = buffer.withUnsafeMutableBytes { MPI_Allreduce(shardquant_mpi_in_place(), $0.baseAddress, Int32($0.count / 8), shardquant_mpi_int64(), op, handle) }
        try check(code, "MPI_Allreduce")
    }

    public func allGather(bytes: [UInt8]) throws(CommunicatorError) -> [[UInt8]] {
        var counts = [Int32](repeating: 0, count: size)
        var mine = Int32(bytes.count)
        try check(MPI_Allgather(&mine, 1, shardquant_mpi_int(), &counts, 1, shardquant_mpi_int(), handle), "MPI_Allgather")
        var displacements = [Int32](repeating: 0, count: size)
        for index in 1..<Swift.max(size, 1) { displacements[index] = displacements[index - 1] + counts[index - 1] }
        let total = Int(counts.reduce(0, +))
        var gathered = [UInt8](repeating: 0, count: Swift.max(total, 1))
        let code = bytes.withUnsafeBytes { send in
            gathered.withUnsafeMutableBytes { receive in
                MPI_Allgatherv(send.baseAddress, mine, shardquant_mpi_byte(), receive.baseAddress, counts, displacements, shardquant_mpi_byte(), handle)
            }
        }
        try check(code, "MPI_Allgatherv")
        return (0..<size).map { Array(gathered[Int(displacements[$0])..<Int(displacements[$0] + counts[$0])]) }
    }

    public func broadcast(bytes: inout [UInt8], root: Int) throws(CommunicatorError) {
        var count = Int64(bytes.count)
        try check(MPI_Bcast(&count, 1, shardquant_mpi_int64(), Int32(root), handle), "MPI_Bcast")
        if rank != root { bytes = [UInt8](repeating: 0, count: Int(count)) }
        let code = bytes.withUnsafeMutableBytes { MPI_Bcast($0.baseAddress, Int32(count), shardquant_mpi_byte(), Int32(root), handle) }
        try check(code, "MPI_Bcast")
    }

    public func barrier() throws(CommunicatorError) {
        try check(MPI_Barrier(handle), "MPI_Barrier")
    }

    public func split(color: Int, key: Int) throws(CommunicatorError) -> Communicator {
        var newHandle: MPI_Comm? = shardquant_mpi_comm_null()
        try check(MPI_Comm_split(handle, Int32(color), Int32(key), &newHandle), "MPI_Comm_split")
        guard let newHandle else { throw CommunicatorError(operation: "MPI_Comm_split", message: "no communicator returned") }
        try check(MPI_Comm_set_errhandler(newHandle, shardquant_mpi_errors_return()), "MPI_Comm_set_errhandler")
        return try MPICommunicator(handle: newHandle)
    }

    public func abort(_ message: String) -> Never {
        FileHandle.standardError.write(Data("error: rank \(rank): \(message)\n".utf8))
        MPI_Abort(shardquant_mpi_comm_world(), 1)
        exit(1)
    }
}

/// Process-wide MPI state: initialised once, finalised once at exit.
final class MPIRuntime: @unchecked Sendable {
    static let shared = MPIRuntime()
    private let lock = NSLock()
    private var initialized = false

    func initialize() throws(CommunicatorError) {
        lock.lock()
        defer { lock.unlock() }
        if initialized { return }
        var provided: Int32 = 0
        let code = MPI_Init_thread(nil, nil, shardquant_mpi_thread_serialized(), &provided)
        if code != shardquant_mpi_success() { throw CommunicatorError(operation: "MPI_Init_thread", message: MPIRuntime.errorString(code)) }
        if provided < shardquant_mpi_thread_serialized() {
            throw CommunicatorError(operation: "MPI_Init_thread", message: "thread support \(provided) is below MPI_THREAD_SERIALIZED")
        }
        MPI_Comm_set_errhandler(shardquant_mpi_comm_world(), shardquant_mpi_errors_return())
        initialized = true
        atexit {
            var finalized: Int32 = 0
            MPI_Finalized(&finalized)
            if finalized == 0 { MPI_Finalize() }
        }
    }

    static func errorString(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(shardquant_mpi_max_error_string()) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &buffer, &length)
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self) + " (code \(code))"
    }
}
