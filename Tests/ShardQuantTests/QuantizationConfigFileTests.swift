import Foundation
import ShardDistributed
import ShardModels
import ShardNN
import ShardQuant
import ShardTensor
import Testing

@Suite("LayerPattern")
struct LayerPatternTests {
    @Test("* matches one segment, ** any number, * inside a segment any characters")
    func matching() throws {
        let oneSegment = try LayerPattern("blocks.*.ffn.down")
        #expect(oneSegment.matches("blocks.0.ffn.down") && oneSegment.matches("blocks.12.ffn.down"))
        #expect(!oneSegment.matches("blocks.ffn.down") && !oneSegment.matches("blocks.0.1.ffn.down") && !oneSegment.matches("blocks.0.ffn.up"))
        let anyDepth = try LayerPattern("blocks.**")
        #expect(anyDepth.matches("blocks") && anyDepth.matches("blocks.0") && anyDepth.matches("blocks.0.ffn.down"))
        #expect(!anyDepth.matches("head"))
        let middle = try LayerPattern("**.down")
        #expect(middle.matches("down") && middle.matches("blocks.3.ffn.down") && !middle.matches("blocks.3.ffn.up"))
        let inside = try LayerPattern("blocks.0.attention.*e*")
        #expect(inside.matches("blocks.0.attention.query") && inside.matches("blocks.0.attention.key") && !inside.matches("blocks.0.attention.output"))
        let exact = try LayerPattern("conv1")
        #expect(exact.isExact && exact.matches("conv1") && !exact.matches("conv10") && !exact.matches("a.conv1"))
    }

    @Test("malformed patterns are refused with the reason")
    func malformed() {
        #expect(throws: LayerPattern.Failure.empty) { try LayerPattern("") }
        #expect(throws: LayerPattern.Failure.emptySegment) { try LayerPattern("blocks..ffn") }
        #expect(throws: LayerPattern.Failure.emptySegment) { try LayerPattern("blocks.") }
        #expect(throws: LayerPattern.Failure.mixedDoubleStar("a**")) { try LayerPattern("blocks.a**") }
    }
}

@Suite("QuantizationConfigFile")
struct QuantizationConfigFileTests {
    static let gpt = GPTConfiguration(hidden: 32, heads: 4, layers: 2, ffn: 64, vocabulary: 50, maxSequence: 8)

    func parse(_ text: String) throws(ConfigFileError) -> QuantizationConfigFile {
        try QuantizationConfigFile(json: Data(text.utf8), file: "quant.json")
    }

    func message(_ text: String, model: Layer? = nil) -> String? {
        do {
            let file = try parse(text)
            if let model { _ = try file.quantConfig(for: model) }
            return nil
        } catch {
            return error.description
        }
    }

    @Test("every parse error names the file, the key and the reason", arguments: [
        ("{", "quant.json: not valid JSON"),
        ("[1]", "quant.json: expected an object, got a list"),
        (#"{"observr": "kl"}"#, #"quant.json: observr: unknown key; did you mean "observer"?"#),
        (#"{"zzzzzzzz": 1}"#, "quant.json: zzzzzzzz: unknown key; expected one of: format, scheme, shift, smooth, gptq, awq, auto_clip, observer, weight_observer, bits, activation_bits, weight_bits, bins, percent, asymmetric, group_size, types, rules, keep_float, mappings"),
        (#"{"scheme": "w4a61"}"#, #"quant.json: scheme: unknown scheme "w4a61"; did you mean "w4a16"?; expected one of: w8a8, w8a8-smooth, w4a16, w4a16-gptq, w4a16-awq, w8a16"#),
        (#"{"auto_clip": {"max_shrink": 1}}"#, "quant.json: auto_clip.max_shrink: must be in (0, 1), got 1.0"),
        (#"{"awq": {"n_grid": 0}}"#, "quant.json: awq.n_grid: expected an integer from 1 to 1000, got 0"),
        (#"{"gptq": {"percdamp": 0}}"#, "quant.json: gptq.percdamp: must be in (0, 1], got 0.0"),
        (#"{"gptq": {"act_order": false}}"#, #"quant.json: gptq.act_order: unknown key; did you mean "actorder"?"#),
        (#"{"smooth": {"alpha": 1.5}}"#, "quant.json: smooth.alpha: must be in [0, 1], got 1.5"),
        (#"{"smooth": {"alfa": 0.5}}"#, #"quant.json: smooth.alfa: unknown key; did you mean "alpha"?"#),
        (#"{"group_size": 4}"#, "quant.json: group_size: must be 8 or more, got 4"),
        (#"{"observer": "group_wise"}"#, #"quant.json: observer: "group_wise" observes weights only; use it as weight_observer"#),
        (#"{"format": "shardquant.config/2"}"#, #"quant.json: format: unsupported format "shardquant.config/2"; this version reads "shardquant.config/1""#),
        (#"{"observer": "kll"}"#, #"quant.json: observer: unknown observer "kll"; did you mean "kl"?"#),
        (#"{"observer": 3}"#, "quant.json: observer: expected a string, got 3"),
        (#"{"observer": "abs_max_channel_wise"}"#, #"quant.json: observer: "abs_max_channel_wise" observes weights only; use it as weight_observer"#),
        (#"{"weight_observer": "msee"}"#, #"quant.json: weight_observer: unknown observer "msee"; did you mean "mse"?"#),
        (#"{"bits": "8"}"#, #"quant.json: bits: expected an integer, got "8""#),
        (#"{"bits": 8.5}"#, "quant.json: bits: expected an integer, got 8.5"),
        (#"{"weight_bits": 12}"#, "quant.json: weight_bits: must be 2 to 8, got 12"),
        (#"{"activation_bits": 1}"#, "quant.json: activation_bits: must be 2 to 8, got 1"),
        (#"{"bins": 0}"#, "quant.json: bins: must be positive, got 0"),
        (#"{"percent": 1.5}"#, "quant.json: percent: must be in (0, 1], got 1.5"),
        (#"{"percent": "high"}"#, #"quant.json: percent: expected a number, got "high""#),
        (#"{"asymmetric": 1}"#, "quant.json: asymmetric: expected true or false, got 1"),
        (#"{"types": "Linear"}"#, #"quant.json: types: expected a list, got "Linear""#),
        (#"{"types": ["Linaer"]}"#, #"quant.json: types[0]: unknown layer class "Linaer"; did you mean "Linear"?"#),
        (#"{"rules": {}}"#, "quant.json: rules: expected a list, got an object"),
        (#"{"rules": [{"name": "fc1"}, {"observer": "kl"}]}"#, #"quant.json: rules[1]: a rule needs "name" (a layer pattern) or "type" (a layer class)"#),
        (#"{"rules": [{"name": "fc1", "type": "Linear"}]}"#, #"quant.json: rules[0]: give "name" or "type", not both"#),
        (#"{"rules": [{"name": "a", "observer": "kl"}, {"name": "b"}, {"name": "c", "observer": "kll"}]}"#, #"quant.json: rules[2].observer: unknown observer "kll"; did you mean "kl"?"#),
        (#"{"rules": [{"name": "fc1", "weight_observr": "mse"}]}"#, #"quant.json: rules[0].weight_observr: unknown key; did you mean "weight_observer"?"#),
        (#"{"rules": [{"name": "blocks..ffn"}]}"#, "quant.json: rules[0].name: a layer pattern must not have an empty segment (two dots in a row, or a dot at either end)"),
        (#"{"rules": [{"name": ""}]}"#, "quant.json: rules[0].name: a layer pattern must not be empty"),
        (#"{"rules": [{"type": "Conv3D"}]}"#, #"quant.json: rules[0].type: unknown layer class "Conv3D"; did you mean "Conv2D"?"#),
        (#"{"rules": ["fc1"]}"#, #"quant.json: rules[0]: expected an object, got "fc1""#),
        (#"{"keep_float": [3]}"#, "quant.json: keep_float[0]: expected a string, got 3"),
        (#"{"mappings": {"ReLU": "QuantedLinear"}}"#, #"quant.json: mappings.ReLU: "ReLU" is not a quantizable layer class; expected one of Conv2D, Linear, ColumnParallelLinear, RowParallelLinear"#),
        (#"{"types": ["GELU"]}"#, #"quant.json: types[0]: unknown layer class "GELU"; expected one of: ColumnParallelLinear, Conv2D, Linear, RowParallelLinear"#),
        (#"{"mappings": {"Linear": "QuantedLiner"}}"#, #"quant.json: mappings.Linear: unknown quantized layer class "QuantedLiner"; did you mean "QuantedLinear"?"#),
    ])
    func parseErrors(_ text: String, _ expected: String) {
        let actual = message(text)
        if expected.hasSuffix("not valid JSON") {
            #expect(actual?.hasPrefix(expected + ": ") == true, "\(actual ?? "no error")")
        } else {
            #expect(actual == expected)
        }
    }

    @Test("errors found against the model name the rule", arguments: [
        (#"{"rules": [{"name": "blocks.*.ffn.dwn"}]}"#, "quant.json: rules[0].name: \"blocks.*.ffn.dwn\" matches no quantizable layer; nearest layers: blocks.0.ffn.down, blocks.1.ffn.down, blocks.0.ffn.up"),
        (#"{"rules": [{"name": "blocks.0.norm1"}]}"#, "quant.json: rules[0].name: \"blocks.0.norm1\" matches no quantizable layer; nearest layers: blocks.0.norm1, blocks.0.norm2, blocks.1.norm1"),
        (#"{"keep_float": ["head", "tail"]}"#, "quant.json: keep_float[1]: \"tail\" matches no quantizable layer; nearest layers: head, norm, blocks"),
        (#"{"observer": "kl", "rules": [{"name": "head", "asymmetric": true}]}"#, "quant.json: rules[0].asymmetric: the kl observer has no asymmetric form (abs_max, mse and hist have)"),
        (#"{"asymmetric": true, "rules": [{"name": "head", "observer": "emd"}]}"#, "quant.json: rules[0].observer: the emd observer has no asymmetric form (abs_max, mse and hist have)"),
    ])
    func modelErrors(_ text: String, _ expected: String) {
        let model = GPT(Self.gpt, seed: 1)
        model.eval()
        #expect(message(text, model: model) == expected)
    }

    @Test("rules resolve: name beats type beats global, later beats earlier, keep_float beats all, flags override the global")
    func resolution() throws {
        let model = GPT(Self.gpt, seed: 1, factory: ParallelLinearFactory(group: SingleProcessCommunicator()))
        model.eval()
        let file = try parse(#"""
        {"format": "shardquant.config/1", "observer": "kl", "bits": 8,
         "rules": [{"type": "ColumnParallelLinear", "observer": "avg"},
                   {"name": "blocks.*.ffn.*", "observer": "mse", "weight_bits": 4},
                   {"name": "blocks.1.ffn.down", "observer": "emd"}],
         "keep_float": ["blocks.1.attention"]}
        """#)
        let (config, resolutions) = try file.quantConfig(for: model, overrides: .init(bits: 6))
        let observed = try PTQ(config).quantize(model)
        func quanted(_ path: String) -> ConvertibleQuantedLayer? { observed.sublayer(at: path) as? ConvertibleQuantedLayer }
        func activation(_ path: String) -> BaseQuanter? { quanted(path)?.activationQuanter as? BaseQuanter }
        #expect(activation("blocks.0.attention.query")?.observerName == "avg")           // type rule
        #expect(activation("blocks.0.attention.output")?.observerName == "kl")           // global (RowParallelLinear)
        #expect(activation("blocks.0.attention.output")?.bitLength == 6)                 // --bits 6 overrides the file's 8
        #expect(activation("blocks.0.ffn.up")?.observerName == "mse")                    // name beats type
        #expect(quanted("blocks.0.ffn.up")?.weightQuanter?.bitLength == 4)
        #expect(activation("blocks.1.ffn.down")?.observerName == "emd")                  // later name rule wins
        #expect(quanted("blocks.1.ffn.down")?.weightQuanter?.bitLength == 6)             // a rule's unset keys come from the global
        #expect(quanted("blocks.1.attention.query") == nil && observed.sublayer(at: "blocks.1.attention.query") is ColumnParallelLinear)
        #expect(resolutions["blocks.1.attention.query"]?.rule == "keep_float[0] (blocks.1.attention)")
        #expect(resolutions["blocks.0.ffn.up"]?.rule == "rules[1] (name blocks.*.ffn.*)")
        #expect(resolutions["blocks.0.attention.query"]?.rule == "rules[0] (type ColumnParallelLinear)")
        #expect(resolutions["blocks.0.attention.output"]?.rule == "global (with command-line flags)")
    }

    @Test("a file with only global settings configures what the flags alone would")
    func sameAsFlags() throws {
        let model = GPT(Self.gpt, seed: 1)
        model.eval()
        let fromFile = try parse(#"{"observer": "mse", "weight_observer": "mse_channel_wise", "bits": 4}"#)
        let fromFlags = QuantizationConfigFile(settings: .init(observer: "mse", weightObserver: "mse_channel_wise", bits: 4))
        func summary(_ file: QuantizationConfigFile) throws -> [String] {
            let observed = try PTQ(try file.quantConfig(for: model).config).quantize(model)
            return observed.namedSublayers().compactMap { path, layer in
                guard let quanted = layer as? ConvertibleQuantedLayer else { return nil }
                let activation = quanted.activationQuanter as? BaseQuanter
                return "\(path) \(activation?.observerName ?? "-")/\(activation?.bitLength ?? 0) \(quanted.weightQuanter?.observerName ?? "-")/\(quanted.weightQuanter?.bitLength ?? 0)"
            }
        }
        let expected = try summary(fromFlags)
        #expect(expected.count == 13 && expected.allSatisfy { $0.hasSuffix("mse/4 mse_channel_wise/4") })
        #expect(try summary(fromFile) == expected)
    }

    @Test("a scheme expands into its settings, keeps lm_head float, and the file's keys and the flags override its parts")
    func schemes() throws {
        func summary(_ file: QuantizationConfigFile, overrides: QuantizationConfigFile.Settings = .init(), scheme: String? = nil) throws -> [String] {
            let model = Layer()
            model.addSublayer("body", Linear(inputFeatures: 64, outputFeatures: 8, generator: CounterRandom(seed: 1)))
            model.addSublayer("lm_head", Linear(inputFeatures: 64, outputFeatures: 16, generator: CounterRandom(seed: 2)))
            model.eval()
            let (config, resolutions) = try file.quantConfig(for: model, overrides: overrides, scheme: scheme.flatMap(QuantizationScheme.named))
            let observed = try PTQ(config).quantize(model, inplace: true)
            return ["body", "lm_head"].map { path in
                guard let quanted = observed.sublayer(at: path) as? ConvertibleQuantedLayer else { return "\(path) float [\(resolutions[path]?.rule ?? "-")]" }
                let activation = quanted.activationQuanter as? BaseQuanter
                let weight = quanted.weightQuanter
                return "\(path) \(activation?.observerName ?? "-") \(weight?.observerName ?? "-")/\(weight?.bitLength ?? 0)/\(weight?.groupSize ?? 0)"
            }
        }
        #expect(try summary(QuantizationConfigFile(), scheme: "w4a16") == ["body - group_wise/4/64", "lm_head float [scheme w4a16 (lm_head kept float)]"])
        #expect(try summary(try parse(#"{"scheme": "w8a8"}"#)) == ["body mse abs_max_channel_wise/8/0", "lm_head float [scheme w8a8 (lm_head kept float)]"])
        // The file's own keys override the scheme's parts; the flags override both.
        #expect(try summary(try parse(#"{"scheme": "w4a16", "group_size": 32}"#))[0] == "body - group_wise/4/32")
        #expect(try summary(try parse(#"{"scheme": "w4a16"}"#), overrides: .init(weightObserver: "abs_max_channel_wise"))[0] == "body - abs_max_channel_wise/4/0")
        #expect(try summary(QuantizationConfigFile(), overrides: .init(weightBits: 8), scheme: "w4a16")[0] == "body - group_wise/8/64")
        // A group size alone selects group_wise.
        #expect(try summary(QuantizationConfigFile(settings: .init(observer: "none", groupSize: 16)))[0] == "body - group_wise/8/16")
    }

    @Test("gptq: the key, the w4a16-gptq scheme and the flags resolve part by part (PaddleSlim's fasterquant defaults)")
    func gptq() throws {
        #expect(try parse(#"{"gptq": true}"#).gptq == GPTQSettings())
        #expect(try parse(#"{"gptq": false}"#).gptq == nil)
        #expect(try parse(#"{"gptq": {"percdamp": 0.05, "actorder": false, "blocksize": 64}}"#).gptq
                == GPTQSettings(percentDamp: 0.05, actOrder: false, blockSize: 64))
        let scheme = try #require(QuantizationScheme.named("w4a16-gptq"))
        #expect(scheme.gptq == GPTQSettings() && scheme.settings.groupSize == 64 && scheme.settings.weightBits == 4)
        #expect(GPTQSettings.resolved(scheme.gptq, .init(actOrder: false)) == GPTQSettings(actOrder: false))
        #expect(GPTQSettings.resolved(nil, .init(percentDamp: 0.1)) == GPTQSettings(percentDamp: 0.1))
        #expect(GPTQSettings.resolved(nil, nil) == nil)
    }

    @Test("awq: the key, the w4a16-awq scheme and the flags")
    func awq() throws {
        #expect(try parse(#"{"awq": true}"#).awq == AWQSettings())
        #expect(try parse(#"{"awq": {"n_grid": 10}}"#).awq == AWQSettings(gridSize: 10))
        #expect(QuantizationScheme.named("w4a16-awq")?.awq == AWQSettings())
        #expect(QuantizationScheme.named("w4a16-awq")?.autoClip == AutoClipSettings())
        #expect(try parse(#"{"auto_clip": {"max_shrink": 0.3, "n_grid": 10, "n_sample_token": 64}}"#).autoClip
                == AutoClipSettings(maxShrink: 0.3, gridSize: 10, sampleTokens: 64))
        #expect(AWQSettings.resolved(nil, enabled: false, gridSize: nil) == nil)
        #expect(AWQSettings.resolved(nil, enabled: true, gridSize: nil) == AWQSettings())
        #expect(AWQSettings.resolved(AWQSettings(), enabled: false, gridSize: 5) == AWQSettings(gridSize: 5))
    }

    @Test("shift: the key, its all_linears and their errors")
    func shift() throws {
        #expect(try parse(#"{"shift": true}"#).shift == ShiftSettings())
        #expect(try parse(#"{"shift": false}"#).shift == nil)
        #expect(try parse(#"{"shift": {"all_linears": true}}"#).shift == ShiftSettings(allLinears: true))
        #expect(throws: ConfigFileError.self) { try parse(#"{"shift": {"all_linears": 1}}"#) }
        #expect(throws: ConfigFileError.self) { try parse(#"{"shift": {"alpha": 0.5}}"#) }
    }

    @Test("smooth.search: the key, its errors and the flags' override")
    func smoothSearch() throws {
        #expect(try parse(#"{"smooth": {"search": true, "all_linears": true}}"#).smooth == SmoothSettings(allLinears: true, search: true))
        #expect(try parse(#"{"smooth": true}"#).smooth?.search == false)
        #expect(throws: ConfigFileError.self) { try parse(#"{"smooth": {"search": "piecewise"}}"#) }
        #expect(SmoothSettings.resolved(QuantizationScheme.named("w8a8-smooth")?.smooth, .init(search: true))
                == SmoothSettings(alpha: 0.5, allLinears: true, search: true))
    }

    @Test("YAML files say the same as JSON ones and get the same key-naming errors")
    func yaml() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let model = GPT(Self.gpt, seed: 1, factory: ParallelLinearFactory(group: SingleProcessCommunicator()))
        model.eval()
        let json = try QuantizationConfigFile.read(root.appendingPathComponent("examples/configs/gpt.json"))
        let yaml = try QuantizationConfigFile.read(root.appendingPathComponent("examples/configs/gpt.yaml"))
        let fromJSON = try json.quantConfig(for: model).resolutions, fromYAML = try yaml.quantConfig(for: model).resolutions
        #expect(fromJSON.count == 13 && fromJSON.keys.sorted() == fromYAML.keys.sorted())
        for (path, resolution) in fromJSON {
            #expect(resolution.settings == fromYAML[path]?.settings && resolution.rule == fromYAML[path]?.rule, "\(path)")
        }
        func message(_ text: String) -> String? {
            do { _ = try QuantizationConfigFile(yaml: Data(text.utf8), file: "quant.yaml"); return nil } catch { return error.description }
        }
        #expect(message("rules:\n  - name: a\n  - name: b\n  - name: c\n    observer: kll\n") == #"quant.yaml: rules[2].observer: unknown observer "kll"; did you mean "kl"?"#)
        #expect(message("bits: \"8\"\n") == #"quant.yaml: bits: expected an integer, got "8""#)
        #expect(message("asymmetric: 1\n") == "quant.yaml: asymmetric: expected true or false, got 1")
        #expect(message("- a\n- b\n") == "quant.yaml: expected an object, got a list")
        #expect(message("rules: [\n")?.hasPrefix("quant.yaml: not valid YAML: ") == true)
    }

    @Test("regression (config fuzz target): a non-string mapping key or deep nesting is an error, not a crash in Yams")
    func yamlFuzzRegressions() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        let found = try Data(contentsOf: root.appendingPathComponent("Fixtures/fuzz/config-crash-yaml-mapping-key"))
        #expect(throws: ConfigFileError.self) { try QuantizationConfigFile(yaml: found, file: "quant.yaml") }
        #expect(throws: ConfigFileError.self) { try QuantizationConfigFile(json: found, file: "quant.json") }
        do {
            _ = try QuantizationConfigFile(yaml: Data("{a: 1}: 2\n".utf8), file: "quant.yaml")
            Issue.record("a mapping used as a key was accepted")
        } catch {
            #expect(error.description == "quant.yaml: not valid YAML: a mapping key at line 1 is not a plain string")
        }
        // A YAML 1.1 base-60 integer that overflows (Yams' constructor traps on it).
        let sexagesimal = try Data(contentsOf: root.appendingPathComponent("Fixtures/fuzz/config-crash-yaml-sexagesimal"))
        #expect(throws: ConfigFileError.self) { try QuantizationConfigFile(yaml: sexagesimal, file: "quant.yaml") }
        do {
            _ = try QuantizationConfigFile(yaml: Data("bits: 3999999999999999999:1\n".utf8), file: "quant.yaml")
            Issue.record("a base-60 width was accepted")
        } catch {
            #expect(error.description == #"quant.yaml: bits: expected an integer, got "3999999999999999999:1""#)
        }
        #expect(try QuantizationConfigFile(yaml: Data("bits: 4\npercent: 0.99\n".utf8), file: "quant.yaml").settings
                == .init(bits: 4, percent: 0.99))
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        do {
            _ = try QuantizationConfigFile(yaml: Data(deep.utf8), file: "quant.yaml")
            Issue.record("100 nested lists were accepted")
        } catch {
            #expect(error.description == "quant.yaml: not valid YAML: nested deeper than 64 levels")
        }
    }

    @Test("unreadable file")
    func unreadable() {
        #expect(throws: ConfigFileError.self) { try QuantizationConfigFile.read(URL(fileURLWithPath: "/nonexistent/quant.json")) }
    }
}

@Suite("QuantizationConfigFile duplicate keys and formats")
struct QuantizationConfigFileDuplicateKeyTests {
    func message(json text: String) -> String? {
        do { _ = try QuantizationConfigFile(json: Data(text.utf8), file: "quant.json"); return nil } catch { return error.description }
    }

    func message(yaml text: String) -> String? {
        do { _ = try QuantizationConfigFile(yaml: Data(text.utf8), file: "quant.yaml"); return nil } catch { return error.description }
    }

    @Test("a key given twice is refused, naming its path and line (JSON parsers keep one silently)", arguments: [
        (#"{"observer": "kl", "observer": "abs_max"}"#, "quant.json: observer: the key appears more than once (line 1)"),
        ("{\n  \"rules\": [\n    {\"name\": \"fc1\"},\n    {\"name\": \"fc2\", \"bits\": 4,\n     \"bits\": 8}\n  ]\n}", "quant.json: rules[1].bits: the key appears more than once (line 5)"),
        // An escaped spelling is the same key.
        (#"{"observer": "kl", "\u006fbserver": "avg"}"#, "quant.json: observer: the key appears more than once"),
    ])
    func duplicateJSON(_ text: String, _ expected: String) {
        #expect(message(json: text)?.hasPrefix(expected) == true, "\(message(json: text) ?? "accepted")")
    }

    @Test("the same key in sibling objects, and keys inside strings, are not duplicates")
    func notDuplicates() {
        #expect(message(json: #"{"rules": [{"name": "fc1", "bits": 4}, {"name": "fc2", "bits": 8}], "keep_float": ["observer", "observer"]}"#) == nil)
        #expect(message(json: #"{"rules": [{"name": "a\"observer\", \"observer"}]}"#) == nil)
    }

    @Test("YAML: a key given twice is refused, naming its path")
    func duplicateYAML() {
        #expect(message(yaml: "observer: kl\nbits: 8\nobserver: abs_max\n")?.hasPrefix("quant.yaml: observer: the key appears more than once (line 3)") == true)
        #expect(message(yaml: "rules:\n  - name: fc1\n    bits: 4\n    bits: 8\n")?.hasPrefix("quant.yaml: rules[0].bits: the key appears more than once") == true)
    }

    @Test("a file named neither .json nor .yaml/.yml is read as JSON, else as YAML, else both reasons are given")
    func extensionless() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let yaml = folder.appendingPathComponent("quant.conf"), json = folder.appendingPathComponent("quant.cfg")
        let neither = folder.appendingPathComponent("broken")
        try Data("observer: kl\nbits: 4\n".utf8).write(to: yaml)
        try Data(#"{"observer": "avg"}"#.utf8).write(to: json)
        try Data("{: [".utf8).write(to: neither)
        #expect(try QuantizationConfigFile.read(yaml).settings.observer == "kl")
        #expect(try QuantizationConfigFile.read(yaml).settings.bits == 4)
        #expect(try QuantizationConfigFile.read(json).settings.observer == "avg")
        #expect(throws: ConfigFileError.self) { try QuantizationConfigFile.read(neither) }
        do { _ = try QuantizationConfigFile.read(neither) } catch {
            #expect(error.reason.hasPrefix("neither JSON") && error.reason.contains("YAML"))
        }
        // A .json file stays JSON only: YAML text there is a JSON error.
        let misnamed = folder.appendingPathComponent("yaml.json")
        try Data("observer: kl\n".utf8).write(to: misnamed)
        do { _ = try QuantizationConfigFile.read(misnamed); Issue.record("accepted YAML in a .json file") } catch {
            #expect(error.reason.hasPrefix("not valid JSON"))
        }
    }
}
