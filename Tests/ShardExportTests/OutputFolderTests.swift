import Foundation
import ShardExport
import Testing

@Suite("OutputFolder")
struct OutputFolderTests {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("output-folder-\(UUID().uuidString)")

    func make(_ name: String, files: [String] = []) throws -> URL {
        let folder = root.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for file in files { try Data("x".utf8).write(to: folder.appendingPathComponent(file)) }
        return folder
    }

    @Test("--overwrite refuses a folder ShardQuant did not write, and leaves it untouched")
    func refusesForeignFolder() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        let foreign = try make("foreign", files: ["precious.txt"])
        #expect(throws: OutputFolder.Failure.refused(foreign.path, "it holds 1 file(s) but no shardquant.json, so ShardQuant did not write it")) {
            try OutputFolder(foreign, overwrite: true)
        }
        #expect(FileManager.default.fileExists(atPath: foreign.appendingPathComponent("precious.txt").path))
        #expect(throws: OutputFolder.Failure.exists(foreign.path)) { try OutputFolder(foreign, overwrite: false) }
    }

    @Test("never the current directory or one of its parents, whatever they hold")
    func refusesCurrentDirectoryAndParents() throws {
        let current = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        for folder in [current, current.deletingLastPathComponent(), URL(fileURLWithPath: "/")] {
            do {
                try OutputFolder.check(folder, overwrite: true)
                Issue.record("\(folder.path) accepted")
            } catch {
                guard case .refused(_, let reason) = error else { Issue.record("\(error)"); continue }
                #expect(reason.contains("current directory"), "\(reason)")
            }
        }
    }

    @Test("a file, or a path under a file, is refused")
    func refusesFiles() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        let folder = try make("files", files: ["a.txt"])
        let file = folder.appendingPathComponent("a.txt")
        #expect(throws: OutputFolder.Failure.refused(file.path, "it is a file, not a folder")) { try OutputFolder.check(file, overwrite: true) }
        #expect(throws: OutputFolder.Failure.refused(file.appendingPathComponent("out").path, "cannot create it: \(file.path) is a file, not a folder")) {
            try OutputFolder.check(file.appendingPathComponent("out"), overwrite: false)
        }
    }

    @Test("its own output (shardquant.json) is replaced with --overwrite; an empty folder is written into")
    func replacesOwnOutput() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        let own = try make("own", files: ["shardquant.json", "old.txt"])
        let folder = try OutputFolder(own, overwrite: true)
        try Data("new".utf8).write(to: folder.file("shardquant.json"))
        try folder.commit()
        #expect(try FileManager.default.contentsOfDirectory(atPath: own.path) == ["shardquant.json"])
        let empty = try make("empty")
        let second = try OutputFolder(empty, overwrite: false)
        try Data("new".utf8).write(to: second.file("scales.json"))
        try second.commit()
        #expect(try FileManager.default.contentsOfDirectory(atPath: empty.path) == ["scales.json"])
        // No staging or old folders are left beside them.
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.path).sorted() == ["empty", "own"])
    }

    @Test("staging folders of killed runs are removed by the next run; a live process's are kept")
    func removesStaleStaging() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        _ = try make("x")
        let stale = try make(".out.partial-999999999"), staleOld = try make(".out.old-999999998")
        let live = try make(".out.partial-1")  // init, always running
        let other = try make(".other.partial-999999999")
        let folder = try OutputFolder(root.appendingPathComponent("out"), overwrite: false)
        #expect(Set(folder.removedStale) == [stale.path, staleOld.path])
        for kept in [live, other] { #expect(FileManager.default.fileExists(atPath: kept.path)) }
        #expect(!FileManager.default.fileExists(atPath: stale.path))
    }
}
