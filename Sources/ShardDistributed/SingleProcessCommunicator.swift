import Foundation

/// The group of one: every collective is the identity. Used whenever the process was not started
/// by `mpirun`, so MPI is never initialised.
public final class SingleProcessCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allReduce(_ buffer: inout [Float], _ operation: ReduceOperation) {}
    public func allReduce(_ buffer: inout [Double], _ operation: ReduceOperation) {}
    public func allReduce(_ buffer: inout [Int64], _ operation: ReduceOperation) {}
    public func allGather(bytes: [UInt8]) -> [[UInt8]] { [bytes] }
    public func broadcast(bytes: inout [UInt8], root: Int) {}
    public func barrier() {}
    public func split(color: Int, key: Int) -> Communicator { SingleProcessCommunicator() }
    public func abort(_ message: String) -> Never {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        exit(1)
    }
}
