import Foundation
import ShardExport
import ShardTensor

/// The reader this process fuzzes, from `SHARDQUANT_FUZZ_TARGET` (npy, safetensors, manifest);
/// launch/fuzz runs one campaign per target, each with its own corpus.
private let target: String = ProcessInfo.processInfo.environment["SHARDQUANT_FUZZ_TARGET"] ?? "npy"

/// libFuzzer entry point (built with `--sanitize=fuzzer --sanitize=address` by launch/fuzz). Every
/// reader must return a value or throw its typed error for any bytes; a crash, a hang, a leak or
/// a sanitizer report is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let data = Data(bytes: start, count: count)
    switch target {
    case "safetensors":
        if let file = try? SafetensorsFile(data: data, file: "fuzz.safetensors") {
            for name in file.names.prefix(16) { _ = try? file.tensor(name) }
        }
    case "manifest":
        _ = try? ShardManifest.parse(data, file: "manifest.json")
    default:
        if let array = try? NumpyFile.parse(data, file: "fuzz.npy") { _ = array.floatTensor() }
    }
    return 0
}
