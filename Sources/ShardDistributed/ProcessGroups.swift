/// The world split into a tensor-parallel × data-parallel grid: world rank = dp · T + tp.
/// The ranks of one tensor-parallel group hold the shards of one model replica and see the same
/// samples; the ranks of one data-parallel group hold the same shard and see different samples.
public final class ProcessGroups: @unchecked Sendable {
    public let world: Communicator
    /// This rank's tensor-parallel group (size T).
    public let tensorParallel: Communicator
    /// This rank's data-parallel group (size D).
    public let dataParallel: Communicator

    /// One process: T = D = 1.
    public static let single = ProcessGroups(single: ())

    private init(single: Void) {
        world = SingleProcessCommunicator()
        tensorParallel = world
        dataParallel = world
    }

    /// Splits `world` into groups of `tensorParallelSize` consecutive ranks (a collective).
    /// - Throws: ``ProcessGroupsError`` when T does not divide the world size.
    public init(world: Communicator, tensorParallelSize: Int) throws {
        guard tensorParallelSize > 0, world.size % tensorParallelSize == 0 else {
            throw ProcessGroupsError.indivisible(worldSize: world.size, tensorParallel: tensorParallelSize)
        }
        self.world = world
        let tpRank = world.rank % tensorParallelSize
        let dpRank = world.rank / tensorParallelSize
        tensorParallel = try world.split(color: dpRank, key: tpRank)
        dataParallel = try world.split(color: tpRank, key: dpRank)
    }

    /// T.
    public var tensorParallelSize: Int { tensorParallel.size }
    /// D.
    public var dataParallelSize: Int { dataParallel.size }
}

/// A grid that cannot be laid out.
public enum ProcessGroupsError: Error, CustomStringConvertible, Equatable {
    case indivisible(worldSize: Int, tensorParallel: Int)
    public var description: String {
        switch self {
        case .indivisible(let world, let tp):
            return "tensor-parallel degree \(tp) does not divide the world size \(world)"
        }
    }
}
