import Foundation

/// The `shardquant` binary of this build, run as a user would: the product SwiftPM built next to
/// the test bundle (the test target depends on it, so it is never stale).
public enum ShardQuantExecutable {
    /// The repository root.
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `shardquant` in the products folder of the running test bundle.
    public static var executable: URL {
        let products = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let beside = products.appendingPathComponent("shardquant")
        if FileManager.default.isExecutableFile(atPath: beside.path) { return beside }
        // macOS runs tests from inside an .xctest bundle (…/debug/X.xctest/Contents/MacOS).
        var folder = products
        while folder.path != "/" && !folder.lastPathComponent.hasSuffix(".xctest") { folder.deleteLastPathComponent() }
        return folder.deletingLastPathComponent().appendingPathComponent("shardquant")
    }

    /// (exit code, standard output, standard error). `environment` changes the inherited
    /// environment: a nil value removes the variable.
    public static func run(_ arguments: [String], in folder: URL? = nil, environment: [String: String?] = [:]) throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = folder
        if !environment.isEmpty {
            var inherited = ProcessInfo.processInfo.environment
            for (name, value) in environment { inherited[name] = value }
            process.environment = inherited
        }
        let output = Pipe(), error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    /// A fresh folder path under the temporary directory (not created).
    public static func temporaryFolder() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("shardquant-test-\(UUID().uuidString)")
    }
}
