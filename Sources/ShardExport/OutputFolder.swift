import Foundation

/// A run's output folder, written so that nothing is half-written: files go into a temporary
/// sibling folder, which ``commit()`` renames into place. A run that fails before `commit` leaves
/// no output folder behind, and a run stopped by SIGINT or SIGTERM removes its staging folder
/// (``installInterruptCleanup()``); one killed outright (SIGKILL) leaves it, and the next run into
/// the same place removes it.
///
/// What may be replaced: a folder that does not exist or is empty is written; an existing folder
/// is replaced only with `overwrite` and only when ShardQuant wrote it (it holds
/// `shardquant.json`), and never when it is the current directory or one of its parents.
public final class OutputFolder {
    /// Why an output folder could not be prepared or committed.
    public enum Failure: Error, CustomStringConvertible, Equatable {
        case exists(String)
        /// `--overwrite` was given for a folder that may not be replaced; the reason says why.
        case refused(String, String)
        case cannotCreate(String, String)
        case cannotCommit(String, String)

        public var description: String {
            switch self {
            case .exists(let path): return "output folder \(path) exists; pass --overwrite to replace it (only a folder ShardQuant wrote, holding shardquant.json, is replaced), or choose another --out"
            case .refused(let path, let reason): return "--out \(path) is not replaced: \(reason); choose another --out"
            case .cannotCreate(let path, let reason): return "cannot create \(path): \(reason)"
            case .cannotCommit(let path, let reason): return "cannot move the results into \(path): \(reason)"
            }
        }
    }

    /// The file that marks a folder as ShardQuant's own output (and so replaceable).
    public static let marker = "shardquant.json"

    public let destination: URL
    /// Where files are written until ``commit()``.
    public let staging: URL
    private let overwrite: Bool
    private var committed = false
    /// Stale staging folders of killed runs that ``init`` removed.
    public private(set) var removedStale: [String] = []

    /// Checks that `destination` may be written (see the type's rules), removes stale staging
    /// folders of killed runs beside it, and creates this run's staging folder.
    public init(_ destination: URL, overwrite: Bool) throws(Failure) {
        let fileManager = FileManager.default
        self.destination = destination.standardizedFileURL
        self.overwrite = overwrite
        try Self.check(self.destination, overwrite: overwrite)
        let parent = self.destination.deletingLastPathComponent()
        staging = parent.appendingPathComponent(".\(self.destination.lastPathComponent).partial-\(ProcessInfo.processInfo.processIdentifier)")
        removedStale = Self.removeStaleStaging(beside: self.destination)
        do {
            try fileManager.createDirectory(at: parent, withIntermediateDirectories: true)
            if fileManager.fileExists(atPath: staging.path) { try fileManager.removeItem(at: staging) }
            try fileManager.createDirectory(at: staging, withIntermediateDirectories: false)
        } catch {
            throw Failure.cannotCreate(staging.path, error.localizedDescription)
        }
        InterruptCleanup.shared.register(staging)
    }

    /// Whether `destination` may be written, without touching anything: a run checks this before
    /// any work. Throws ``Failure/exists(_:)`` or ``Failure/refused(_:_:)`` naming the reason.
    public static func check(_ destination: URL, overwrite: Bool) throws(Failure) {
        let fileManager = FileManager.default
        let destination = destination.standardizedFileURL
        let path = destination.path
        var isFolder: ObjCBool = false
        guard fileManager.fileExists(atPath: path, isDirectory: &isFolder) else {
            // A path under an existing file cannot become a folder.
            var ancestor = destination.deletingLastPathComponent()
            while ancestor.path != "/" && !fileManager.fileExists(atPath: ancestor.path) { ancestor = ancestor.deletingLastPathComponent() }
            var ancestorIsFolder: ObjCBool = false
            if fileManager.fileExists(atPath: ancestor.path, isDirectory: &ancestorIsFolder), !ancestorIsFolder.boolValue {
                throw Failure.refused(path, "cannot create it: \(ancestor.path) is a file, not a folder")
            }
            return
        }
        guard isFolder.boolValue else { throw Failure.refused(path, "it is a file, not a folder") }
        let resolved = destination.resolvingSymlinksInPath().path
        let current = URL(fileURLWithPath: fileManager.currentDirectoryPath).resolvingSymlinksInPath().path
        if resolved == current || resolved == "/" || current.hasPrefix(resolved.hasSuffix("/") ? resolved : resolved + "/") {
            throw Failure.refused(path, resolved == current ? "it is the current directory" : "it holds the current directory")
        }
        let contents = (try? fileManager.contentsOfDirectory(atPath: path)) ?? []
        if contents.isEmpty { return }  // an empty folder is written into
        guard overwrite else { throw Failure.exists(path) }
        guard contents.contains(marker) else {
            throw Failure.refused(path, "it holds \(contents.count) file(s) but no \(marker), so ShardQuant did not write it")
        }
    }

    /// Removes `.NAME.partial-PID` and `.NAME.old-PID` folders beside `destination` whose process
    /// no longer runs on this host (left by a run that was killed); returns their paths.
    static func removeStaleStaging(beside destination: URL) -> [String] {
        let fileManager = FileManager.default
        let parent = destination.deletingLastPathComponent()
        let name = destination.lastPathComponent
        var removed: [String] = []
        for entry in (try? fileManager.contentsOfDirectory(atPath: parent.path)) ?? [] {
            for kind in [".partial-", ".old-"] where entry.hasPrefix("." + name + kind) {
                guard let pid = Int32(entry.dropFirst(name.count + 1 + kind.count)), pid > 0,
                      pid != ProcessInfo.processInfo.processIdentifier else { continue }
                // kill(pid, 0) fails with ESRCH when no such process exists.
                if kill(pid, 0) != 0 && errno == ESRCH {
                    let stale = parent.appendingPathComponent(entry)
                    if (try? fileManager.removeItem(at: stale)) != nil { removed.append(stale.path) }
                }
            }
        }
        return removed
    }

    /// The staging location of a file in the folder.
    public func file(_ name: String) -> URL { staging.appendingPathComponent(name) }

    /// Renames the staging folder into place.
    public func commit() throws(Failure) {
        let fileManager = FileManager.default
        do {
            var isFolder: ObjCBool = false
            if fileManager.fileExists(atPath: destination.path, isDirectory: &isFolder) {
                // Checked again: the folder may have changed since the run started.
                try Self.check(destination, overwrite: overwrite)
                let old = destination.deletingLastPathComponent().appendingPathComponent(".\(destination.lastPathComponent).old-\(ProcessInfo.processInfo.processIdentifier)")
                try fileManager.moveItem(at: destination, to: old)
                try fileManager.moveItem(at: staging, to: destination)
                try? fileManager.removeItem(at: old)
            } else {
                try fileManager.moveItem(at: staging, to: destination)
            }
            committed = true
            InterruptCleanup.shared.unregister(staging)
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure.cannotCommit(destination.path, error.localizedDescription)
        }
    }

    /// On SIGINT or SIGTERM, removes every staging folder not yet committed, says so on standard
    /// error and exits with 128 + the signal's number. Call once, early, in a command that writes
    /// an output folder.
    public static func installInterruptCleanup() {
        InterruptCleanup.shared.install()
    }

    deinit {
        if !committed {
            try? FileManager.default.removeItem(at: staging)
            InterruptCleanup.shared.unregister(staging)
        }
    }
}

/// The staging folders to remove when the process is interrupted, and the signal sources that do it.
private final class InterruptCleanup: @unchecked Sendable {
    static let shared = InterruptCleanup()
    private let lock = NSLock()
    private var folders: Set<URL> = []
    private var sources: [DispatchSourceSignal] = []

    func register(_ folder: URL) { lock.withLock { _ = folders.insert(folder) } }
    func unregister(_ folder: URL) { lock.withLock { _ = folders.remove(folder) } }

    func install() {
        lock.withLock {
            guard sources.isEmpty else { return }
            for signalNumber in [SIGINT, SIGTERM] {
                signal(signalNumber, SIG_IGN)  // delivered to the source below instead
                let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: DispatchQueue.global())
                source.setEventHandler { [unowned self] in self.interrupted(by: signalNumber) }
                source.resume()
                sources.append(source)
            }
        }
    }

    private func interrupted(by signalNumber: Int32) {
        let pending = lock.withLock { folders }
        for folder in pending where (try? FileManager.default.removeItem(at: folder)) != nil {
            FileHandle.standardError.write(Data("shardquant: interrupted (signal \(signalNumber)); removed the unfinished \(folder.path)\n".utf8))
        }
        _exit(128 + signalNumber)  // no atexit handlers: the main thread may be inside a collective
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

/// A content fingerprint of a file, or of a folder's regular files (recursively, in path order,
/// each name with its bytes), as 16 hex digits: the file is mapped and mixed eight bytes at a time
/// (`h = rotl((h ⊕ word) · 0x9E3779B97F4A7C15, 31)`, then the length), so a 100 MB checkpoint costs
/// milliseconds. Not cryptographic: it tells apart different copies, not forgeries. `"missing"`
/// for a path that does not exist or cannot be read.
public func contentFingerprint(of url: URL) -> String {
    var isFolder: ObjCBool = false
    guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) else { return "missing" }
    if isFolder.boolValue {
        let files = (FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.isRegularFileKey])?
            .compactMap { $0 as? URL } ?? [])
            .filter { (try? $0.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true }
            .map { $0.path }
            .sorted()
        var listing = Data()
        for file in files {
            listing.append(Data("\(file.dropFirst(url.path.count)):\(contentFingerprint(of: URL(fileURLWithPath: file)))\n".utf8))
        }
        return fingerprint(listing)
    }
    guard let data = try? Data(contentsOf: url, options: .alwaysMapped) else { return "missing" }
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    data.withUnsafeBytes { raw in
        let words = raw.count / 8
        for index in 0..<words {
            let word = raw.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self)
            hash = ((hash ^ word) &* 0x9E37_79B9_7F4A_7C15).rotatedLeft(by: 31)
        }
        for index in (words * 8)..<raw.count {
            hash = ((hash ^ UInt64(raw[index])) &* 0x9E37_79B9_7F4A_7C15).rotatedLeft(by: 31)
        }
    }
    hash = (hash ^ UInt64(data.count)) &* 0x9E37_79B9_7F4A_7C15
    return String(format: "%016llx", hash)
}

extension UInt64 {
    fileprivate func rotatedLeft(by count: Int) -> UInt64 { (self << UInt64(count)) | (self >> UInt64(64 - count)) }
}
