/// Text made safe for HTML element content and attribute values: `& < > " '` escaped.
/// Used by the dashboard's pages and by templates' `{{ }}` values.
public enum HTMLEscaping {
    public static func append(_ text: String, to output: inout String) {
        for character in text {
            switch character {
            case "&": output += "&amp;"
            case "<": output += "&lt;"
            case ">": output += "&gt;"
            case "\"": output += "&quot;"
            case "'": output += "&#39;"
            default: output.append(character)
            }
        }
    }

    public static func escape(_ text: String) -> String {
        var output = ""
        output.reserveCapacity(text.count)
        append(text, to: &output)
        return output
    }
}
