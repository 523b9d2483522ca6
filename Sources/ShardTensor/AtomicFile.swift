import Foundation

/// Writes files so that a reader never sees half of one: the bytes go to a temporary file in the
/// same folder, which is then renamed over the destination.
public enum AtomicFile {
    /// Writes `data` to `url` atomically.
    public static func write(_ data: Data, to url: URL) throws(TensorFileError) {
        do {
            try data.write(to: url, options: .atomic)
        } catch {
            throw TensorFileError(file: url.path, reason: .unwritable(error.localizedDescription))
        }
    }
}
