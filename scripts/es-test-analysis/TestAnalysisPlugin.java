// Test-only Elasticsearch plugin, built and installed by scripts/es.sh for the secured test node.
//
// The integ-test distribution that scripts/es.sh runs lacks the analysis-common module, but the
// .security-7 system index (native users and roles, API keys) defines an "email" analyzer with
// the token filters pattern_capture and unique and the tokenizer uax_url_email. Without them the
// index cannot be created and every _security/role|user|api_key write fails with 400. This plugin
// registers those three names on top of Lucene classes that the distribution already ships
// (lib/lucene-analysis-common-*.jar). Production clusters have analysis-common and never need it.
package batchaudit.estest;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

import org.apache.lucene.analysis.CharArraySet;
import org.apache.lucene.analysis.TokenFilter;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.email.UAX29URLEmailTokenizer;
import org.apache.lucene.analysis.pattern.PatternCaptureGroupTokenFilter;
import org.apache.lucene.analysis.tokenattributes.CharTermAttribute;
import org.apache.lucene.analysis.tokenattributes.PositionIncrementAttribute;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.index.analysis.AbstractTokenFilterFactory;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.index.analysis.TokenizerFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;

public final class TestAnalysisPlugin extends Plugin implements AnalysisPlugin {

    @Override
    public Map<String, AnalysisProvider<TokenFilterFactory>> getTokenFilters() {
        Map<String, AnalysisProvider<TokenFilterFactory>> filters = new HashMap<>();
        filters.put("pattern_capture", AnalysisPlugin.requiresAnalysisSettings(
            (indexSettings, env, name, settings) -> new PatternCaptureFactory(name, settings)));
        filters.put("unique", (indexSettings, env, name, settings) -> new UniqueFactory(name, settings));
        return filters;
    }

    @Override
    public Map<String, AnalysisProvider<TokenizerFactory>> getTokenizers() {
        return Map.of("uax_url_email", (indexSettings, env, name, settings) -> {
            int max = settings.getAsInt("max_token_length", 255);
            return TokenizerFactory.newFactory(name, () -> {
                UAX29URLEmailTokenizer t = new UAX29URLEmailTokenizer();
                t.setMaxTokenLength(max);
                return t;
            });
        });
    }

    /** pattern_capture: every capture group of every pattern becomes a token. */
    static final class PatternCaptureFactory extends AbstractTokenFilterFactory {
        private final Pattern[] patterns;
        private final boolean preserveOriginal;

        PatternCaptureFactory(String name, Settings settings) {
            super(name, settings);
            List<String> list = settings.getAsList("patterns");
            if (list.isEmpty()) {
                throw new IllegalArgumentException("pattern_capture [" + name + "] requires [patterns]");
            }
            patterns = list.stream().map(Pattern::compile).toArray(Pattern[]::new);
            preserveOriginal = settings.getAsBoolean("preserve_original", true);
        }

        @Override
        public TokenStream create(TokenStream in) {
            return new PatternCaptureGroupTokenFilter(in, preserveOriginal, patterns);
        }
    }

    /** unique: drops a term seen before (only at the same position, if so configured). */
    static final class UniqueFactory extends AbstractTokenFilterFactory {
        private final boolean onlySamePosition;

        UniqueFactory(String name, Settings settings) {
            super(name, settings);
            onlySamePosition = settings.getAsBoolean("only_on_same_position", false);
        }

        @Override
        public TokenStream create(TokenStream in) {
            return new UniqueFilter(in, onlySamePosition);
        }
    }

    static final class UniqueFilter extends TokenFilter {
        private final CharTermAttribute term = addAttribute(CharTermAttribute.class);
        private final PositionIncrementAttribute posInc = addAttribute(PositionIncrementAttribute.class);
        private final CharArraySet seen = new CharArraySet(8, false);
        private final boolean onlySamePosition;

        UniqueFilter(TokenStream in, boolean onlySamePosition) {
            super(in);
            this.onlySamePosition = onlySamePosition;
        }

        @Override
        public boolean incrementToken() throws java.io.IOException {
            while (input.incrementToken()) {
                if (onlySamePosition && posInc.getPositionIncrement() > 0) {
                    seen.clear();
                }
                char[] buf = term.buffer();
                int len = term.length();
                if (!seen.contains(buf, 0, len)) {
                    char[] copy = new char[len];
                    System.arraycopy(buf, 0, copy, 0, len);
                    seen.add(copy);
                    return true;
                }
            }
            return false;
        }

        @Override
        public void reset() throws java.io.IOException {
            super.reset();
            seen.clear();
        }
    }
}
