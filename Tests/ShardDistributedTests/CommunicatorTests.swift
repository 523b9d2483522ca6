import Foundation
import ShardDistributed
import ShardNN
import ShardTensor
import Testing

@Suite("ThreadGroupCommunicator")
struct ThreadGroupCommunicatorTests {
    @Test("all-reduce, all-gather of variable sizes, broadcast and split", arguments: [1, 2, 3, 4])
    func collectives(size: Int) throws {
        let results = try ThreadGroup.run(size: size) { group -> [String] in
            var floats: [Float] = [Float(group.rank), -Float(group.rank)]
            try group.allReduce(&floats, .maximum)
            var integers: [Int64] = [Int64(group.rank + 1)]
            try group.allReduce(&integers, .sum)
            var wide: [Int128] = [Int128(Int64.max) * Int128(group.rank + 1)]
            try group.allReduceSum(&wide)
            let gathered = try group.allGather([Float](repeating: Float(group.rank), count: group.rank + 1))
            var bytes: [UInt8] = group.rank == size - 1 ? [7, 8, 9] : []
            try group.broadcast(bytes: &bytes, root: size - 1)
            let halves = try group.split(color: group.rank % 2, key: -group.rank)
            var inHalf: [Int64] = [1]
            try halves.allReduce(&inHalf, .sum)
            try group.barrier()
            return ["\(floats)", "\(integers)", "\(wide)", "\(gathered.map(\.count))", "\(bytes)", "\(halves.rank) \(halves.size) \(inHalf)"]
        }
        let n = Int64(size)
        for (rank, result) in results.enumerated() {
            #expect(result[0] == "\([Float(size - 1), -Float(0)])")  // max(−0, −1, …) is rank 0's −0
            #expect(result[1] == "\([n * (n + 1) / 2])")
            #expect(result[2] == "\([Int128(Int64.max) * Int128(n * (n + 1) / 2)])")
            #expect(result[3] == "\(Array(1...size))")
            #expect(result[4] == "[7, 8, 9]")
            let halfSize = (size + 1 - rank % 2) / 2
            // key −rank orders each half by descending world rank.
            let members = stride(from: rank % 2, to: size, by: 2).sorted(by: >)
            #expect(result[5] == "\(members.firstIndex(of: rank)!) \(halfSize) [\(halfSize)]")
        }
    }

    @Test("a rank that throws fails every other rank's pending collective; its own error is reported")
    func failure() {
        struct Boom: Error {}
        do {
            _ = try ThreadGroup.run(size: 3) { group -> Int in
                if group.rank == 1 { throw Boom() }
                var values: [Float] = [1]
                try group.allReduce(&values, .sum)  // ranks 0 and 2 wait here until rank 1 fails
                return 0
            }
            Issue.record("the run must fail")
        } catch let failure as ThreadGroup.RankFailure {
            #expect(failure.rank == 1 && failure.error is Boom)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test("an aborting rank ends the group: survivors' collectives name it, the run reports its message")
    func abortNamesRank() {
        final class Box: @unchecked Sendable { var survivor = "" }
        let box = Box()
        do {
            _ = try ThreadGroup.run(size: 2) { group -> Int in
                if group.rank == 0 { (group as! ThreadGroupCommunicator).abort("bad data in batch 3") }
                do {
                    try group.barrier()
                } catch {
                    box.survivor = "\(error)"
                    throw error
                }
                return 1
            }
            Issue.record("the run must fail")
        } catch let failure as ThreadGroup.RankFailure {
            #expect(failure.rank == 0 && "\(failure.error)".contains("bad data in batch 3"))
            #expect(box.survivor == "rank 0 failed: bad data in batch 3")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}

@Suite("ProcessGroups")
struct ProcessGroupsTests {
    @Test("world rank = dp·T + tp; groups have the right members", arguments: [(4, 2), (6, 3), (4, 1), (4, 4)])
    func grid(world: Int, tp: Int) throws {
        let layout = try ThreadGroup.run(size: world) { communicator -> [Int] in
            let groups = try ProcessGroups(world: communicator, tensorParallelSize: tp)
            return [groups.tensorParallel.rank, groups.tensorParallel.size, groups.dataParallel.rank, groups.dataParallel.size]
        }
        for (rank, entry) in layout.enumerated() {
            #expect(entry == [rank % tp, tp, rank / tp, world / tp])
        }
    }

    @Test("a degree that does not divide the world is an error")
    func indivisible() {
        #expect(throws: ThreadGroup.RankFailure.self) {
            _ = try ThreadGroup.run(size: 3) { try ProcessGroups(world: $0, tensorParallelSize: 2) }
        }
        #expect(ProcessGroups.single.tensorParallelSize == 1 && ProcessGroups.single.dataParallelSize == 1)
    }
}

@Suite("Column and row parallel linear layers")
struct ParallelLinearTests {
    let weight = Tensor.normal([12, 24], generator: CounterRandom(seed: 1))
    let bias = Tensor.normal([24], generator: CounterRandom(seed: 2))
    let input = Tensor.normal([3, 5, 12], generator: CounterRandom(seed: 3))

    @Test("column (gathered) and row (split input) equal the full Linear", arguments: [1, 2, 3, 4])
    func matchesLinear(size: Int) throws {
        let (weight, bias, input) = (self.weight, self.bias, self.input)
        let expected = Linear(weight: weight, bias: bias)(input)
        let outputs = try ThreadGroup.run(size: size) { group -> [Tensor] in
            let column = try ColumnParallelLinear(fullWeight: weight, fullBias: bias, gatherOutput: true, group: group)
            let row = try RowParallelLinear(fullWeight: weight, fullBias: bias, inputIsParallel: false, group: group)
            let width = 12 / group.size
            let rowParallelInput = try RowParallelLinear(fullWeight: weight, fullBias: bias, inputIsParallel: true, group: group)
            let slice = input.slice(axis: -1, start: group.rank * width, end: (group.rank + 1) * width)
            let gatheredColumn = try column.gatheredParameters(), gatheredRow = try row.gatheredParameters()
            return [column(input), row(input), rowParallelInput(slice), column.parameter("weight"),
                    gatheredColumn.weight, gatheredColumn.bias!, gatheredRow.weight, gatheredRow.bias!]
        }
        for output in outputs {
            // Different summation orders: within float32 noise of the K = 12 dot products.
            #expect(output[0].isClose(to: expected, relativeTolerance: 1e-5, absoluteTolerance: 1e-5))
            #expect(output[1].isClose(to: expected, relativeTolerance: 1e-5, absoluteTolerance: 1e-5))
            #expect(output[2].isClose(to: expected, relativeTolerance: 1e-5, absoluteTolerance: 1e-5))
        }
        #expect(Tensor.concatenate(outputs.map { $0[3] }, axis: 1) == weight, "column shards are slices of the full weight")
        for output in outputs {
            #expect(output[4] == weight && output[5] == bias && output[6] == weight && output[7] == bias, "gathered back exactly")
        }
    }

    @Test("uneven parts (5 + 4 + 3 of 12 input features, 9 + 8 + 7 of 24 outputs) equal the full Linear and gather back exactly")
    func unevenParts() throws {
        let (weight, bias, input) = (self.weight, self.bias, self.input)
        let expected = Linear(weight: weight, bias: bias)(input)
        let outputs = try ThreadGroup.run(size: 3) { group -> [Tensor] in
            let columnParts = [9, 8, 7], rowParts = [5, 4, 3]
            let column = try ColumnParallelLinear(fullWeight: weight, fullBias: bias, gatherOutput: true, group: group, parts: columnParts)
            let row = try RowParallelLinear(fullWeight: weight, fullBias: bias, inputIsParallel: false, group: group, parts: rowParts)
            let rowParallelInput = try RowParallelLinear(fullWeight: weight, fullBias: bias, inputIsParallel: true, group: group, parts: rowParts)
            let start = rowParts.prefix(group.rank).reduce(0, +)
            let slice = input.slice(axis: -1, start: start, end: start + rowParts[group.rank])
            let gatheredColumn = try column.gatheredParameters(), gatheredRow = try row.gatheredParameters()
            return [column(input), row(input), rowParallelInput(slice), gatheredColumn.weight, gatheredColumn.bias!, gatheredRow.weight,
                    Tensor(shape: [1], scalars: [Float(column.parameter("weight").shape[1])]), Tensor(shape: [1], scalars: [Float(row.parameter("weight").shape[0])])]
        }
        for (rank, output) in outputs.enumerated() {
            // Different summation orders: within float32 noise of the K = 12 dot products.
            for index in 0..<3 { #expect(output[index].isClose(to: expected, relativeTolerance: 1e-5, absoluteTolerance: 1e-5)) }
            #expect(output[3] == weight && output[4] == bias && output[5] == weight, "gathered back exactly")
            #expect(output[6].scalars == [Float([9, 8, 7][rank])] && output[7].scalars == [Float([5, 4, 3][rank])])
        }
    }

    @Test("the layers declare their splits: column weight axis 1 and bias, row weight axis 0; inputs and outputs as they flow")
    func declaredSharding() throws {
        let weight = self.weight
        let layouts = try ThreadGroup.run(size: 2) { group -> [LayerSharding] in
            [try ColumnParallelLinear(fullWeight: weight, fullBias: nil, gatherOutput: false, group: group).sharding,
             try ColumnParallelLinear(fullWeight: weight, fullBias: nil, gatherOutput: true, group: group).sharding,
             try RowParallelLinear(fullWeight: weight, fullBias: nil, inputIsParallel: true, group: group).sharding,
             try RowParallelLinear(fullWeight: weight, fullBias: nil, inputIsParallel: false, group: group).sharding]
        }
        for (rank, layout) in layouts.enumerated() {
            #expect(layout[0] == LayerSharding(parameters: ["weight": .split(axis: 1, parts: [12, 12]), "bias": .split(axis: 0, parts: [12, 12])],
                                               input: .replicated, output: .split(axis: -1, parts: [12, 12]), rank: rank))
            #expect(layout[1].output == .replicated && layout[1].parameter("weight") == .split(axis: 1, parts: [12, 12]))
            #expect(layout[2] == LayerSharding(parameters: ["weight": .split(axis: 0, parts: [6, 6])],
                                               input: .split(axis: -1, parts: [6, 6]), output: .replicated, rank: rank))
            #expect(layout[3].input == .replicated && layout[3].parameter("bias") == .replicated)
        }
        // Parts that do not cover the extent are refused, naming them.
        let message = try ThreadGroup.run(size: 2) { group -> String in
            do { _ = try ColumnParallelLinear(fullWeight: weight, fullBias: nil, gatherOutput: false, group: group, parts: [20, 3]); return "built" }
            catch { return "\(error)" }
        }
        #expect(message.allSatisfy { $0 == "parts [20, 3] do not cut the 24 output features over tensor-parallel degree 2: give one positive part per rank, summing to 24" })
    }

    @Test("a size the degree does not divide is a clear error")
    func indivisible() throws {
        let weight = self.weight
        let messages = try ThreadGroup.run(size: 5) { group -> String in
            do {
                _ = try ColumnParallelLinear(fullWeight: weight, fullBias: nil, gatherOutput: false, group: group)
                return "built"
            } catch {
                return "\(error)"
            }
        }
        #expect(messages.allSatisfy { $0 == "tensor-parallel degree 5 does not divide the 24 output features" })
    }
}
