import Foundation
import ShardExport
import ShardModels
import ShardNN
import ShardQuant
import ShardTensor

/// `model.gguf` for llama.cpp, written when a Llama run from a GGUF checkpoint quantized its
/// weights only, symmetric, in groups of 32 at 4 or 8 bits: GGUF's Q4_0 and Q8_0 are exactly those
/// blocks (a float16 step per 32 input features of one output row), and the group-wise observer
/// rounds those steps to float16 before quantizing, so the file holds exactly ShardQuant's
/// integers and steps. The embedding (tied to the head, kept float by the schemes) is written as
/// llama.cpp's own Q8_0, the norms as F32; the query and key rows go back to GGUF's pair order; the
/// metadata is the source checkpoint's (architecture, sizes, tokenizer), with `general.file_type`
/// set. Any other result gets no GGUF and a note saying why (never a failed run).
enum LlamaGGUFExport {
    /// Why `converted` (with `layers`) cannot be written as GGUF Q4_0/Q8_0, or `nil` when it can.
    static func obstacle(model llama: LlamaDefinition, layers: [LayerScales], converted: Layer) -> String? {
        guard let checkpoint = try? llama.checkpoint(), checkpoint.source is LlamaGGUFSource else {
            return "model.gguf not written: the checkpoint is not a GGUF file, so there is no llama.cpp metadata to carry over"
        }
        if converted.namedSublayers().contains(where: { $0.layer is ChannelTransform }) {
            return "model.gguf not written: Shift's input transforms (after the norms) have no place in llama.cpp's Llama graph"
        }
        for layer in layers {
            if layer.activation != nil {
                return "model.gguf not written: GGUF holds weight-only results, and \(layer.path)'s input is quantized (use --observer none or --scheme w4a16/w8a16)"
            }
            guard let weight = layer.weight else { continue }
            if layer.path == QuantizationScheme.outputHead {
                return "model.gguf not written: lm_head (the tied embedding, written as Q8_0) must stay float"
            }
            guard weight.groupSize == 32, [4, 8].contains(weight.bits), weight.zeroPoint == nil else {
                return "model.gguf not written: \(layer.path) has \(weight.bits)-bit weights \(weight.groupSize.map { "in groups of \($0)" } ?? (weight.axis == -1 ? "per tensor" : "per channel")); GGUF's Q4_0 and Q8_0 are symmetric groups of 32 at 4 or 8 bits (--group-size 32)"
            }
            let qmax = Float(quantizationMaximum(bits: weight.bits))
            if let step = weight.threshold.map({ $0 / qmax }).first(where: { Float(Float16($0)) != $0 }) {
                return "model.gguf not written: \(layer.path) has a step \(step) beyond float16's range, which GGUF's blocks store"
            }
        }
        return nil
    }

    /// The GGUF file of `converted` (the single-process converted Llama).
    static func data(converted: Layer, model: LlamaDefinition) throws -> Data {
        let checkpoint = try model.checkpoint()
        guard let source = checkpoint.source as? LlamaGGUFSource else { throw CheckpointFailure(file: model.weights, reason: "not a GGUF checkpoint") }
        let headDimension = checkpoint.configuration.headDimension
        var writer = GGUFWriter()
        var anyFourBit = false
        var tensors: [(name: String, shape: [Int], type: GGUFFile.TensorType, bytes: Data)] = []
        let byGGUFName = Dictionary(uniqueKeysWithValues: converted.namedParameters().map { (LlamaGGUFSource.ggufName($0.name), $0.name) })
        for info in source.file.tensors {
            let name = info.name
            if name == "token_embd.weight" || name == "output.weight" {
                let table = try floatParameter(converted, hfName: name == "token_embd.weight" ? "model.embed_tokens.weight" : "lm_head.weight", gguf: name)
                tensors.append((name, table.shape, .q8_0, GGUFWriter.q8_0(quantizing: table.scalars)))
                continue
            }
            if info.dimensions.count == 1 {
                guard let hfName = byGGUFName[name], let vector = converted.sublayer(at: String(hfName.dropLast(".weight".count)))?.parameters["weight"] else {
                    throw CheckpointFailure(file: "model.gguf", reason: "no parameter for \(name)")
                }
                tensors.append((name, vector.shape, .f32, GGUFWriter.f32(vector.scalars)))
                continue
            }
            let hfPath = try layerPath(for: name, converted: converted)
            guard let layer = converted.sublayer(at: hfPath) as? ConvertibleQuantedLayer, let weight = layer.quantizedWeight,
                  weight.groupSize == 32, weight.axis == 1 else {
                throw CheckpointFailure(file: "model.gguf", reason: "\(hfPath) is not a group-32 quantized weight")
            }
            let inputs = weight.shape[0], outputs = weight.shape[1], blocks = inputs / 32
            let qmax = Float(weight.quantMaximum)
            let permuted = hfPath.hasSuffix("q_proj") || hfPath.hasSuffix("k_proj")
            var values = [Int8](repeating: 0, count: inputs * outputs)
            var steps = [Float](repeating: 0, count: blocks * outputs)
            for ggufRow in 0..<outputs {
                // GGUF's row 2j + s of a head is Hugging Face's row s·d/2 + j.
                var row = ggufRow
                if permuted {
                    let head = ggufRow / headDimension * headDimension, within = ggufRow % headDimension
                    row = head + (within % 2) * (headDimension / 2) + within / 2
                }
                for block in 0..<blocks {
                    steps[ggufRow * blocks + block] = weight.thresholds[block * outputs + row] / qmax
                    for k in 0..<32 { values[ggufRow * inputs + block * 32 + k] = weight.values[(block * 32 + k) * outputs + row] }
                }
            }
            for step in steps where Float(Float16(step)) != step {
                throw CheckpointFailure(file: "model.gguf", reason: "\(hfPath) has a step \(step) that float16 cannot hold exactly")
            }
            anyFourBit = anyFourBit || weight.bits == 4
            let bytes = weight.bits == 4 ? GGUFWriter.q4_0(values: values, steps: steps) : GGUFWriter.q8_0(values: values, steps: steps)
            tensors.append((name, [outputs, inputs], weight.bits == 4 ? .q4_0 : .q8_0, bytes))
        }
        for (key, value) in source.file.metadata where key != "general.alignment" { writer.set(key, value) }
        // llama.cpp's LLAMA_FTYPE_MOSTLY_Q4_0 = 2, MOSTLY_Q8_0 = 7.
        writer.set("general.file_type", .uint32(anyFourBit ? 2 : 7))
        writer.set("general.quantization_version", .uint32(2))
        for tensor in tensors {
            do { try writer.add(tensor.name, shape: tensor.shape, type: tensor.type, bytes: tensor.bytes) } catch {
                throw CheckpointFailure(file: "model.gguf", reason: "\(error)")
            }
        }
        return writer.data()
    }

    private static func floatParameter(_ converted: Layer, hfName: String, gguf: String) throws -> Tensor {
        let path = String(hfName.dropLast(".weight".count))
        guard let layer = converted.sublayer(at: path), let table = layer.parameters["weight"] else {
            throw CheckpointFailure(file: "model.gguf", reason: "\(path) has no float weight for \(gguf)")
        }
        // lm_head's weight is `[in, out]` when it is a linear; the GGUF table is `[vocabulary, hidden]`.
        return layer.hasInputByOutputWeight ? table.transposed() : table
    }

    /// The Hugging Face layer path of a GGUF matrix name (`blk.3.attn_q.weight` → `model.layers.3.self_attn.q_proj`).
    private static func layerPath(for ggufName: String, converted: Layer) throws -> String {
        let modules = ["attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
                       "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"]
        let pieces = ggufName.split(separator: ".")
        guard pieces.count == 4, pieces[0] == "blk", let module = modules[String(pieces[2])] else {
            throw CheckpointFailure(file: "model.gguf", reason: "tensor \(ggufName) of the source checkpoint has no place in a Llama")
        }
        return "model.layers.\(pieces[1]).\(module)"
    }
}
