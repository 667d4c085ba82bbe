import RollConfig
import Testing

@Suite struct TOMLTests {
    @Test func parsesTheSubsetRollUses() throws {
        let doc = try parseTOML("""
            # comment
            target = "app@host:/srv/roll"   # trailing comment
            keep = 1_0
            flag = true
            shared = [
                ".env",   # secrets
                'media/',
            ]
            empty = []
            esc = "tab\\tquote\\"é\\u00e9"

            [health]
            url = "http://127.0.0.1:8080/health"
            """)
        #expect(doc["target"] == .string("app@host:/srv/roll"))
        #expect(doc["keep"] == .integer(10))
        #expect(doc["flag"] == .boolean(true))
        #expect(doc["shared"] == .array([.string(".env"), .string("media/")]))
        #expect(doc["empty"] == .array([]))
        #expect(doc["esc"] == .string("tab\tquote\"éé"))
        #expect(doc["health.url"] == .string("http://127.0.0.1:8080/health"))
    }

    @Test(arguments: ["a = ", "a = \"open", "a = [1, 2", "a = 1 b = 2", "a = 1\na = 2", "= 1", "a = yes", "a = \"x\ny\""])
    func errorsNameTheirLine(_ text: String) {
        #expect(throws: TOMLError.self) { try parseTOML(text) }
    }
}
