import Foundation

/// A run's output folder, written so that nothing is half-written: files go into a temporary
/// sibling folder, which ``commit()`` renames into place (replacing an old folder only when
/// `overwrite` was given). A run that fails before `commit` leaves no output folder behind.
public final class OutputFolder {
    /// Why an output folder could not be prepared or committed.
    public enum Failure: Error, CustomStringConvertible, Equatable {
        case exists(String)
        case cannotCreate(String, String)
        case cannotCommit(String, String)

        public var description: String {
            switch self {
            case .exists(let path): return "output folder \(path) exists; pass --overwrite to replace it"
            case .cannotCreate(let path, let reason): return "cannot create \(path): \(reason)"
            case .cannotCommit(let path, let reason): return "cannot move the results into \(path): \(reason)"
            }
        }
    }

    public let destination: URL
    /// Where files are written until ``commit()``.
    public let staging: URL
    private let overwrite: Bool
    private var committed = false

    public init(_ destination: URL, overwrite: Bool) throws(Failure) {
        let fileManager = FileManager.default
        self.destination = destination.standardizedFileURL
        self.overwrite = overwrite
        if fileManager.fileExists(atPath: self.destination.path) && !overwrite {
            throw Failure.exists(self.destination.path)
        }
        let parent = self.destination.deletingLastPathComponent()
        staging = parent.appendingPathComponent(".\(self.destination.lastPathComponent).partial-\(ProcessInfo.processInfo.processIdentifier)")
        do {
            try fileManager.createDirectory(at: parent, withIntermediateDirectories: true)
            if fileManager.fileExists(atPath: staging.path) { try fileManager.removeItem(at: staging) }
            try fileManager.createDirectory(at: staging, withIntermediateDirectories: false)
        } catch {
            throw Failure.cannotCreate(staging.path, error.localizedDescription)
        }
    }

    /// The staging location of a file in the folder.
    public func file(_ name: String) -> URL { staging.appendingPathComponent(name) }

    /// Renames the staging folder into place.
    public func commit() throws(Failure) {
        let fileManager = FileManager.default
        do {
            if fileManager.fileExists(atPath: destination.path) {
                let old = destination.deletingLastPathComponent().appendingPathComponent(".\(destination.lastPathComponent).old-\(ProcessInfo.processInfo.processIdentifier)")
                try fileManager.moveItem(at: destination, to: old)
                try fileManager.moveItem(at: staging, to: destination)
                try? fileManager.removeItem(at: old)
            } else {
                try fileManager.moveItem(at: staging, to: destination)
            }
            committed = true
        } catch {
            throw Failure.cannotCommit(destination.path, error.localizedDescription)
        }
    }

    deinit {
        if !committed { try? FileManager.default.removeItem(at: staging) }
    }
}

/// FNV-1a, 64-bit, as 16 hex digits: a content fingerprint for provenance (not cryptographic).
public func fingerprint(_ data: Data) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in data {
        hash ^= UInt64(byte)
        hash &*= 0x0000_0100_0000_01b3
    }
    return String(format: "%016llx", hash)
}
