// swift-tools-version: 6.0
import Foundation
import PackageDescription

let package = Package(
    name: "ShardQuant",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "ShardTensor", targets: ["ShardTensor"]),
        .library(name: "ShardNN", targets: ["ShardNN"]),
        .library(name: "ShardDistributed", targets: ["ShardDistributed"]),
        .library(name: "ShardText", targets: ["ShardText"]),
        .library(name: "ShardModels", targets: ["ShardModels"]),
        .library(name: "ShardQuant", targets: ["ShardQuant"]),
        .library(name: "ShardTrain", targets: ["ShardTrain"]),
        .library(name: "ShardExport", targets: ["ShardExport"]),
        .library(name: "ShardJob", targets: ["ShardJob"]),
        .executable(name: "shardquant", targets: ["shardquant"]),
        .executable(name: "qat_digits", targets: ["qat_digits"]),
        .executable(name: "tp_job", targets: ["tp_job"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.28.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
    ],
    targets: [
        // MARK: - System libraries

        .systemLibrary(
            name: "CMPI",
            pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev"])]
        ),
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        // CPUID and XCR0, header-only: what the processor and the OS allow (BLAS kernel selection).
        .systemLibrary(name: "CProcessor"),
        // AVX2 kernels of the observers' threshold searches and of the decoder's activations, each
        // with a scalar twin (function-level target attribute; callers check the processor first).
        .target(name: "CKernels"),

        // MARK: - Libraries

        .target(
            name: "ShardTensor",
            dependencies: ["CBLAS", "CKernels", "CProcessor"]
        ),
        .target(
            name: "ShardNN",
            dependencies: [
                "ShardTensor",
                .product(name: "OrderedCollections", package: "swift-collections"),
            ]
        ),
        .target(
            name: "ShardDistributed",
            dependencies: ["CMPI", "ShardNN", "ShardTensor"]
        ),
        .target(name: "ShardText"),
        .target(
            name: "ShardModels",
            dependencies: ["ShardDistributed", "ShardNN", "ShardTensor", "ShardText"]
        ),
        .target(
            name: "ShardQuant",
            dependencies: [
                "CKernels", "ShardDistributed", "ShardNN", "ShardTensor",
                .product(name: "Yams", package: "Yams"),  // YAML config files
            ]
        ),
        .target(
            name: "ShardTrain",
            dependencies: ["ShardDistributed", "ShardNN", "ShardTensor"]
        ),
        .target(
            name: "ShardExport",
            dependencies: [
                "ShardDistributed", "ShardNN", "ShardQuant", "ShardTensor",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),

        .target(
            name: "ShardJob",
            dependencies: ["ShardDistributed", "ShardExport", "ShardModels", "ShardNN", "ShardQuant", "ShardTensor"]
        ),

        // MARK: - Executables

        .executableTarget(
            name: "shardquant",
            dependencies: [
                "ShardExport", "ShardJob", "ShardModels", "ShardNN", "ShardQuant", "ShardTensor", "ShardText",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // MARK: - Examples (public API only)

        .executableTarget(
            name: "qat_digits",
            dependencies: ["ShardExport", "ShardModels", "ShardNN", "ShardQuant", "ShardTensor", "ShardTrain"],
            path: "examples/qat_digits"
        ),
        .executableTarget(
            name: "tp_job",
            dependencies: ["ShardDistributed", "ShardJob", "ShardModels", "ShardQuant"],
            path: "examples/tp_job"
        ),
        .executableTarget(
            name: "seed_ptq",
            dependencies: ["ShardDistributed", "ShardModels", "ShardQuant"],
            path: "examples/seed_ptq"
        ),

        // MARK: - Tests

        // Multi-rank checks run under mpirun by tools/check_grid.py (not by `swift test`).
        .executableTarget(
            name: "mpi_checks",
            dependencies: ["ShardDistributed", "ShardJob", "ShardModels", "ShardQuant"],
            path: "Tests/MPIChecks"
        ),

        // Shared by the test targets: expectClose and the built `shardquant` product.
        .target(name: "ShardTestSupport", dependencies: ["ShardTensor"], path: "Tests/ShardTestSupport"),
        .testTarget(name: "ShardTensorTests", dependencies: ["ShardTensor", "ShardTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "ShardDistributedTests", dependencies: ["ShardDistributed", "ShardNN", "ShardTensor"]),
        .testTarget(name: "ShardExportTests", dependencies: ["ShardExport", "ShardQuant", "ShardModels", "ShardDistributed"]),
        .testTarget(name: "ShardNNTests", dependencies: ["ShardNN", "ShardTensor"]),
        .testTarget(name: "ShardTrainTests", dependencies: ["ShardTrain", "ShardNN", "ShardTensor", "ShardDistributed", "ShardTestSupport"]),
        // Depends on the `shardquant` product, so the CLI tests run the binary of this build.
        .testTarget(name: "ShardQuantTests", dependencies: ["ShardQuant", "ShardModels", "ShardDistributed", "ShardTrain", "ShardExport", "ShardJob",
                                                           "ShardTestSupport", "shardquant"], exclude: ["Fixtures"]),
        .testTarget(name: "ShardModelsTests", dependencies: ["ShardModels", "ShardNN", "ShardTensor", "ShardDistributed", "ShardText"], exclude: ["Fixtures"]),
        .testTarget(name: "ShardTextTests", dependencies: ["ShardText", "ShardModels", "ShardTensor"], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)

// libFuzzer targets (launch/fuzz): built only with SHARDQUANT_FUZZ=1 and
// `--sanitize=fuzzer --sanitize=address`, because libFuzzer supplies their `main`.
if ProcessInfo.processInfo.environment["SHARDQUANT_FUZZ"] == "1" {
    package.targets.append(.executableTarget(name: "shardquant_fuzz", dependencies: ["ShardExport", "ShardModels", "ShardQuant", "ShardTensor", "ShardText"], path: "Fuzz/Targets"))
}
