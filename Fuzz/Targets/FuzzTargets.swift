import Foundation
import ShardExport
import ShardModels
import ShardQuant
import ShardTensor
import ShardText

/// The reader this process fuzzes, from `SHARDQUANT_FUZZ_TARGET` (npy, safetensors, manifest,
/// vocab: a `vocab.txt` then the tokenizer on text from the same bytes, bertconfig: a BERT `config.json`,
/// gguf: a GGUF checkpoint's header and tensors, a Llama's dimensions and its byte-level BPE tokenizer,
/// config: a quantization config file as JSON and as YAML, resolved against a small GPT when it parses);
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
    case "vocab":
        // The first half is the vocabulary (with the special tokens added so most inputs build a
        // tokenizer), the second half the text to encode.
        let half = data.count / 2
        let special = Data("[PAD]\n[UNK]\n[CLS]\n[SEP]\n".utf8)
        if let tokenizer = try? WordPieceTokenizer(vocabularyData: special + data.prefix(half), file: "vocab.txt") {
            _ = tokenizer.encode(String(decoding: data.suffix(from: data.startIndex + half), as: UTF8.self), maximumLength: 64)
        }
        _ = try? WordPieceTokenizer(vocabularyData: data, file: "vocab.txt")
    case "bertconfig":
        _ = try? BERTConfiguration.parse(data, file: "config.json")
    case "gguf":
        // The header, then every tensor whole and its first row and column (bounded work).
        if let file = try? GGUFFile(data: data, path: "fuzz.gguf") {
            for info in file.tensors.prefix(8) where info.rowCount * info.rowLength <= 1 << 16 {
                _ = try? file.tensor(info.name)
                _ = try? file.rows(info.name, 0..<1)
                _ = try? file.columns(info.name, 0..<1)
            }
            // What a Llama reads from it: the dimensions and the byte-level BPE tokenizer.
            _ = try? LlamaGGUFSource(file: file).configuration()
            if let tokenizer = try? ByteLevelBPETokenizer(gguf: file) { _ = tokenizer.encode("Hello, 2024 wörld 東京 !!") }
        }
    case "config":
        // The same bytes as JSON and as YAML.
        if let file = try? QuantizationConfigFile(json: data, file: "quant.json") {
            _ = try? file.quantConfig(for: fuzzModel)
        }
        if let file = try? QuantizationConfigFile(yaml: data, file: "quant.yaml") {
            _ = try? file.quantConfig(for: fuzzModel)
        }
    default:
        if let array = try? NumpyFile.parse(data, file: "fuzz.npy") { _ = array.floatTensor() }
    }
    return 0
}

/// A small GPT (two blocks) whose layer paths the config target's patterns are resolved against
/// (libFuzzer calls the entry point from one thread; resolution only reads the model).
nonisolated(unsafe) private let fuzzModel: Layer = {
    let model = GPT(GPTConfiguration(hidden: 16, heads: 2, layers: 2, ffn: 32, vocabulary: 20, maxSequence: 4), seed: 0)
    model.eval()
    return model
}()
