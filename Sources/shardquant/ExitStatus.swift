import ArgumentParser
import Foundation
import ShardDistributed
import ShardExport
import ShardJob
import ShardModels
import ShardNN
import ShardQuant
import ShardTensor
import ShardText

/// A file or its data that the job cannot use (a wrong shape, an out-of-range token id, an
/// unreadable file): the message names the file and says what was expected. Exits with 65.
struct InputDataError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The process exit codes of every command (sysexits.h): usage errors 64, bad input data 65,
/// everything else 1; a run interrupted by a signal exits with 128 + the signal's number.
enum ExitStatus {
    static let usage: Int32 = 64
    static let dataError: Int32 = 65
    static let failure: Int32 = 1

    /// The code for an error thrown by a command.
    static func code(for error: Error) -> Int32 {
        switch error {
        case is ValidationError: return usage
        case is OutputFolder.Failure: return isUsage(error) ? usage : failure
        case is ModelSettingsError, is CalibrationJobError: return usage
        case is InputDataError, is ModelInputError, is TensorFileError, is ConfigFileError, is CheckpointFailure, is TokenizerError,
             is CalibrationData.Failure, is LayerError, is GGUFFileError, is ReportFileError, is CheckpointError, is ShardManifest.Failure:
            return dataError
        case let quantization as QuantizationError:
            if case .nonFinite = quantization { return dataError }
            if case .unknownObserver = quantization { return usage }
            if case .unsupportedGroup = quantization { return usage }
            if case .unsupportedAlgorithm = quantization { return usage }
            return failure
        case let saved as SavedStatisticsError:
            switch saved {
            case .incompatible, .notMergeable: return usage
            case .unreadable, .quanter: return dataError
            }
        case let checkpoint as CalibrationCheckpointError:
            switch checkpoint {
            case .exists, .otherJob, .unsupported: return usage
            case .corrupted, .mismatch: return dataError
            case .unwritable: return failure
            }
        case let exit as ExitCode: return exit.rawValue
        default: return failure
        }
    }

    /// An output folder that may not be used is the caller's choice of `--out`: a usage error.
    private static func isUsage(_ error: Error) -> Bool {
        guard let failure = error as? OutputFolder.Failure else { return false }
        switch failure {
        case .exists, .refused: return true
        case .cannotCreate, .cannotCommit: return false
        }
    }

    /// Whether this process is an MPI rank other than 0 (`OMPI_COMM_WORLD_RANK`), which prints no
    /// usage errors: every rank parses the same arguments, and rank 0 speaks for all.
    static var isQuietRank: Bool {
        guard let rank = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_RANK"] else { return false }
        return rank != "0"
    }

    /// The longest a quiet rank waits, in seconds, for the launcher to end it (``letRankZeroEndFirst()``).
    static let quietRankGrace: Double = 10

    /// Called on a quiet rank (``isQuietRank``) that is about to exit with an error every rank
    /// shares: waits until the launcher ends this process, at most ``quietRankGrace`` seconds,
    /// so that rank 0, which prints the error for the job, exits first. Were a quiet rank to exit
    /// first, `mpirun` would abort the job while rank 0's message is still in flight, and the
    /// message may be cut (a CI run once lost its first letter). `mpirun` ends the other ranks
    /// within milliseconds of rank 0's non-zero exit; the bound covers launchers that do not.
    static func letRankZeroEndFirst() {
        guard isQuietRank else { return }
        Thread.sleep(forTimeInterval: quietRankGrace)
    }
}

extension ExitStatus {
    /// Runs a command's work and gives its errors their exit codes: a ``ValidationError`` is
    /// printed with `command`'s own usage line (64); any other error as `Error: message` with
    /// ``code(for:)``. MPI ranks other than 0 print nothing (rank 0 speaks for the job).
    static func running(_ command: ParsableCommand.Type, _ body: () throws -> Void) throws {
        do {
            // A model's refusal of its sizes is a usage error like ValidationError.
            do { try body() } catch let error as ModelSettingsError { throw ValidationError(error.description) }
        } catch let error as ValidationError {
            if !isQuietRank {
                let usage = ShardQuantCommand.usageString(for: command)
                let path = usage.split(separator: " ").prefix { !$0.hasPrefix("[") && !$0.hasPrefix("<") && !$0.hasPrefix("-") }
                FileHandle.standardError.write(Data("Error: \(error.message)\nUsage: \(usage)\n  See '\(path.joined(separator: " ")) --help' for more information.\n".utf8))
            }
            letRankZeroEndFirst()
            throw ExitCode(usage)
        } catch let exit as ExitCode {
            if exit.rawValue != 0 { letRankZeroEndFirst() }
            throw exit
        } catch let clean as CleanExit {
            throw clean
        } catch {
            if !isQuietRank { FileHandle.standardError.write(Data("Error: \(error)\n".utf8)) }
            letRankZeroEndFirst()
            throw ExitCode(code(for: error))
        }
    }
}

extension ShardQuantCommand {
    /// Chooses OpenBLAS's kernel first (``BLASKernelSelection``; it may re-execute the process)
    /// and keeps large buffers in the heap (``AllocatorTuning``), then parses and runs the command; errors exit with ``ExitStatus``'s codes. A first argument
    /// that is no command and no option gets the nearest command's name.
    static func main() {
        BLASKernelSelection.prepareProcess()
        AllocatorTuning.apply()
        let arguments = Array(CommandLine.arguments.dropFirst())
        let names = configuration.subcommands.map { $0._commandName }
        if let first = arguments.first, !first.hasPrefix("-"), !names.contains(first), first != "help" {
            let nearest = names.min { editDistance($0, first) < editDistance($1, first) }!
            let hint = editDistance(nearest, first) <= 3 ? "did you mean '\(nearest)'? " : ""
            if ExitStatus.isQuietRank {
                ExitStatus.letRankZeroEndFirst()
                Foundation.exit(ExitStatus.usage)
            }
            fail("unknown command '\(first)'; \(hint)The commands are: \(names.joined(separator: ", ")).\n"
                 + "Usage: shardquant <subcommand>\n  See 'shardquant --help' for more information.", code: ExitStatus.usage)
        }
        if ExitStatus.isQuietRank {
            // Rank 0 prints usage errors (and help) for every rank; the others exit quietly.
            do { _ = try parseAsRoot(arguments) } catch {
                let help = arguments.contains { ["--help", "-h", "help", "--version"].contains($0) }
                if !help { ExitStatus.letRankZeroEndFirst() }
                Foundation.exit(help ? 0 : ExitStatus.usage)
            }
        }
        main(arguments)
    }

    /// Prints `message` on standard error and exits with `code`.
    static func fail(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data((message.hasPrefix("Error:") ? message : "Error: " + message).utf8 + [0x0A]))
        Foundation.exit(code)
    }

    /// Levenshtein distance (ShardNN's), for command-name suggestions.
    static func editDistance(_ a: String, _ b: String) -> Int { ShardNN.editDistance(a, b) }
}
