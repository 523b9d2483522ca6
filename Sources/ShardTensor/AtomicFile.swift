import Foundation
#if canImport(Glibc)
import Glibc
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
import Darwin
private let systemWrite = Darwin.write
#endif

/// Writes files so that a reader never sees half of one: the bytes go to a temporary file in the
/// same folder, which is then renamed over the destination. Failures (a full disk, a file-size
/// limit, a folder that cannot be written) throw ``TensorFileError`` with the system's reason and
/// leave neither the temporary file nor a partial destination behind.
public enum AtomicFile {
    /// Writes `data` to `url` atomically. `durable`: the bytes are flushed to the disk (`fsync`)
    /// before the rename, and the rename itself after it (the folder's `fsync`), so that a
    /// machine that loses power keeps either the old file or the whole new one (checkpoints).
    public static func write(_ data: Data, to url: URL, durable: Bool = false) throws(TensorFileError) {
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        func failure(_ what: String) -> TensorFileError {
            TensorFileError(file: url.path, reason: .unwritable("\(what): \(String(cString: strerror(errno)))"))
        }
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw failure("cannot create a file in \(url.deletingLastPathComponent().path)") }
        var written = 0
        let ok = data.withUnsafeBytes { raw -> Bool in
            while written < raw.count {
                let count = systemWrite(descriptor, raw.baseAddress!.advanced(by: written), raw.count - written)
                if count < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                written += count
            }
            return true
        }
        if !ok {
            let error = failure("write failed after \(written) of \(data.count) bytes")
            close(descriptor)
            unlink(temporary)
            throw error
        }
        if durable && fsync(descriptor) != 0 {
            let error = failure("fsync failed")
            close(descriptor)
            unlink(temporary)
            throw error
        }
        if close(descriptor) != 0 {
            let error = failure("close failed")
            unlink(temporary)
            throw error
        }
        if rename(temporary, url.path) != 0 {
            let error = failure("cannot rename into place")
            unlink(temporary)
            throw error
        }
        if durable {
            let folder = open(url.deletingLastPathComponent().path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if folder >= 0 {
                _ = fsync(folder)
                close(folder)
            }
        }
    }
}
