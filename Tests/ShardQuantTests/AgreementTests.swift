import Foundation
import ShardDistributed
import ShardJob
import Testing

@Suite("Agreement")
struct AgreementTests {
    struct Refusal: Error, CustomStringConvertible {
        let description: String
    }

    static func agreement(_ world: Communicator) -> Agreement { Agreement(world: world) { _ in 65 } }

    @Test("one rank's failure fails every rank with the same error, naming that rank's message")
    func oneRankFails() throws {
        let outcomes = try ThreadGroup.run(size: 3) { world -> [String] in
            do {
                try Self.agreement(world).callAsFunction { if world.rank == 1 { throw Refusal(description: "bad file on rank 1") } }
                return ["passed"]
            } catch let failure as AgreedFailure {
                return failure.lines(worldSize: 3) + ["code \(failure.code)"]
            }
        }
        for outcome in outcomes { #expect(outcome == ["Error: rank 1: bad file on rank 1", "code 65"]) }
    }

    @Test("a failure agreed inside an agreement passes through the outer one unchanged, on every rank")
    func nested() throws {
        let outcomes = try ThreadGroup.run(size: 2) { world -> [String] in
            do {
                try Self.agreement(world).callAsFunction {
                    try Self.agreement(world).callAsFunction { if world.rank == 1 { throw Refusal(description: "truncated block file") } }
                    Issue.record("the inner agreement did not throw on rank \(world.rank)")
                }
                return ["passed"]
            } catch let failure as AgreedFailure {
                return failure.lines(worldSize: 2)
            }
        }
        for outcome in outcomes { #expect(outcome == ["Error: rank 1: truncated block file"]) }
    }

    @Test("no failure: the body runs once on every rank and nothing is thrown")
    func noFailure() throws {
        let outcomes = try ThreadGroup.run(size: 2) { world -> Int in
            var runs = 0
            try Self.agreement(world).callAsFunction { runs += 1 }
            return runs
        }
        #expect(outcomes == [1, 1])
    }
}
