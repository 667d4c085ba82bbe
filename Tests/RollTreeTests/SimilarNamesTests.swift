import RollTree
import Testing

@Suite struct SimilarNamesTests {
    private func key(_ s: String) -> String { String(decoding: SimilarNames.key(Array(s.utf8)), as: UTF8.self) }

    @Test func hashesAndVersionsAreWildcards() {
        #expect(key("numpy.libs/libgfortran-040039e1.so.5.0.0") == "numpy.libs/libgfortran-#.so.#")
        #expect(key("static/main.3f2a9c.js") == "static/main.#.js")
        #expect(key("numpy-1.26.3.dist-info/RECORD") == "numpy-#.dist-info/RECORD")
        #expect(key("Django-5.0.dist-info/AUTHORS") == key("Django-4.2.16.dist-info/AUTHORS"), "versions of any length")
        #expect(key("static/1036.b7aaba381aaa04073a6b.js") == "static/#.js")
        #expect(key("pkg_2024_01/x+y") == "pkg_#_#/x+y")
        #expect(key("node_modules/.pnpm/lodash@4.17.21/node_modules/lodash/lodash.js")
                == "node_modules/.pnpm/lodash@#/node_modules/lodash/lodash.js")
        #expect(key("node_modules/@babel/core/lib/index.js") == "node_modules/@babel/core/lib/index.js")
    }

    @Test func wordsStayWords() {
        #expect(key("src/facade/decade.py") == "src/facade/decade.py", "hex letters alone are a word")
        #expect(key("cpython-311-x86_64") == "cpython-#-x86_#")
        #expect(key("v2/abc12") == "v2/abc12", "too short to be a hash, not all digits")
    }

    @Test func theLooseKeyIsFolderFirstWordAndExtension() {
        func loose(_ s: String) -> String? { SimilarNames.looseKey(Array(s.utf8)).map { String(decoding: $0, as: UTF8.self) } }
        #expect(loose("assets/index-BZ2LoXbv.js") == "assets/index*.js")
        #expect(loose("dist/chunk-7KQW3ZXN.mjs") == "dist/chunk*.mjs")
        #expect(loose("app-1.2.3/static/logo-a_B3-x9Yz.svg") == "app-#/static/logo*.svg")
        #expect(loose("README") == "README*")
        #expect(loose("x/ab-CwMnDZ3r.js") == nil, "a first word of two letters says too little")
    }
}
