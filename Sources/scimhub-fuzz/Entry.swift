// SPDX-License-Identifier: Apache-2.0
import Foundation

#if FUZZING
    /// libFuzzer's callback (`scripts/fuzz`, built with `-sanitize=fuzzer,address -DFUZZING`):
    /// the target is named by `SCIMHUB_FUZZ_TARGET`.
    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
        FuzzTargets.run(fuzzTarget, data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
        return 0
    }

    @_silgen_name("LLVMFuzzerRunDriver")
    func LLVMFuzzerRunDriver(
        _ argc: UnsafeMutablePointer<Int32>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
    ) -> Int32

    /// SwiftPM links an executable's `main` to `<module>_main`; here it hands over to libFuzzer's
    /// driver, which parses its own flags (`-max_total_time`, corpus folders, ...).
    @_cdecl("scimhub_fuzz_main")
    public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
        var count = argc
        var vector = argv
        return LLVMFuzzerRunDriver(&count, &vector) { data, size in fuzzOne(data, size) }
    }

    let fuzzTarget: String = {
        guard let t = ProcessInfo.processInfo.environment["SCIMHUB_FUZZ_TARGET"], FuzzTargets.names.contains(t) else {
            fatalError("set SCIMHUB_FUZZ_TARGET to one of \(FuzzTargets.names)")
        }
        return t
    }()
#else
    /// Without libFuzzer: `scimhub-fuzz TARGET FILE|DIR...` replays inputs (the seed corpora and
    /// any crash kept as a regression) through the same targets; `scripts/test` runs it.
    @main
    struct Replay {
        static func main() {
            let args = CommandLine.arguments.dropFirst()
            guard let target = args.first, FuzzTargets.names.contains(target) else {
                FileHandle.standardError.write(Data("usage: scimhub-fuzz \(FuzzTargets.names) FILE|DIR...\n".utf8))
                exit(2)
            }
            var files: [String] = []
            for path in args.dropFirst() {
                var isDir: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { continue }
                if isDir.boolValue {
                    files += ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map {
                        path + "/" + $0
                    }
                } else {
                    files.append(path)
                }
            }
            for f in files { FuzzTargets.run(target, Array(FileManager.default.contents(atPath: f) ?? Data())) }
            print("\(target): \(files.count) input(s) replayed")
        }
    }
#endif
