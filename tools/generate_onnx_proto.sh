#!/usr/bin/env bash
# Regenerates Sources/ShardExport/ONNX/onnx.pb.swift from tools/proto/onnx.proto. Run by hand after
# editing the proto; the generated file is committed so that builds need neither protoc nor the plugin.
# Needs: protoc (Debian protobuf-compiler) and protoc-gen-swift from swift-protobuf 1.x on PATH, e.g.
#   git clone https://github.com/apple/swift-protobuf && cd swift-protobuf && swift build -c release --product protoc-gen-swift
set -euo pipefail
cd "$(dirname "$0")/.."
protoc --proto_path=tools/proto --swift_out=Sources/ShardExport/ONNX --swift_opt=Visibility=Public tools/proto/onnx.proto
echo "wrote Sources/ShardExport/ONNX/onnx.pb.swift"
