// One METEOR 1.5 JVM that scores requests on several threads (the project's own code, built
// on the jar's public classes; compiled at run time by captioner_jax/evaluation/meteor.py).
//
// Usage: java -Xmx2G -cp meteor-1.5.jar:<dir of this class> MeteorThreads <threads> \
//            - - -stdio -l en -norm
// The arguments after <threads> are the jar's own; the scorer is built from them exactly as
// the jar's `Meteor.main` builds it (createPropertiesFromArgs, MeteorConfiguration,
// MeteorScorer), and every request line gets the answer the jar's `-stdio` loop gives it
// (SCORE -> one statistics line, EVAL -> one score per statistics field and the aggregate,
// SING -> one score, the same error lines), in request order. The difference: requests are
// scored concurrently, each worker with its own `MeteorScorer` copy (the jar's copy
// constructor: a new stemmer per copy, the synonym and paraphrase tables shared read-only),
// so the paraphrase table (the bulk of a jar's start) is loaded and the JIT warms up once
// instead of once per jar process.
//
// Two pure functions are remembered instead of recomputed (a profile of the jar on the
// val_1 + val_2 pairs: a quarter of a SCORE in the normaliser's regular expressions, an
// eighth in the Snowball stemmer, for sentences and words that recur across requests):
// the normalised form of a sentence (`Normalizer.normalizeLine`, then lower case, as the
// scorer applies them) and the stem of a word (the aligner's stemmer, wrapped). A SCORE then
// runs the scorer's own steps on them: align the test with each reference, the statistics of
// the alignment, keep the first best score (`MeteorScorer.getMeteorStats(String, List)`).
import edu.cmu.meteor.aligner.Aligner;
import edu.cmu.meteor.aligner.Stemmer;
import edu.cmu.meteor.scorer.MeteorConfiguration;
import edu.cmu.meteor.scorer.MeteorScorer;
import edu.cmu.meteor.scorer.MeteorStats;
import edu.cmu.meteor.util.Normalizer;

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.lang.reflect.Field;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

public final class MeteorThreads {
    private static final String SEP = "\\|\\|\\|";
    // Queued after the last request: the writer stops there.
    private static final Future<String> END = new CompletableFuture<String>();

    private static MeteorScorer base;
    private static final ThreadLocal<Worker> WORKER = ThreadLocal.withInitial(Worker::new);
    // Normalised sentences (shared by the workers) and stems (per worker) remembered; a
    // memory is emptied when it reaches this size (tests set it small to exercise that).
    private static final int MAX_REMEMBERED =
            Integer.getInteger("meteorthreads.remember", 200000);
    private static final ConcurrentHashMap<String, String> NORMALISED =
            new ConcurrentHashMap<String, String>();

    /** A worker's copy of the scorer, its aligner and the scorer's text settings. */
    static final class Worker {
        final MeteorScorer scorer = new MeteorScorer(base);
        final Aligner aligner;
        final boolean normalize;
        final boolean lowerCase;
        final boolean keepPunctuation;
        final int langID;

        Worker() {
            try {
                aligner = (Aligner) field(MeteorScorer.class, "aligner").get(scorer);
                normalize = field(MeteorScorer.class, "normalize").getBoolean(scorer);
                lowerCase = field(MeteorScorer.class, "lowerCase").getBoolean(scorer);
                keepPunctuation = field(MeteorScorer.class, "keepPunctuation").getBoolean(scorer);
                langID = field(MeteorScorer.class, "langID").getInt(scorer);
                Field stemmer = field(Aligner.class, "stemmer");
                Stemmer own = (Stemmer) stemmer.get(aligner);
                if (own != null) {  // this copy's own stemmer (the copy constructor makes one)
                    stemmer.set(aligner, new RememberingStemmer(own));
                }
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException("unexpected METEOR scorer layout", e);
            }
        }

        /** The text the scorer aligns for `line`: normalised, then lower case (settings). */
        String prepare(String line) {
            if (!normalize && !lowerCase) {
                return line;
            }
            String done = NORMALISED.get(line);
            if (done == null) {
                done = line;
                if (normalize) {
                    done = Normalizer.normalizeLine(done, langID, keepPunctuation);
                }
                if (lowerCase) {
                    done = done.toLowerCase();
                }
                if (NORMALISED.size() >= MAX_REMEMBERED) {
                    NORMALISED.clear();
                }
                NORMALISED.put(line, done);
            }
            return done;
        }

        /** `MeteorScorer.getMeteorStats(test, references)` on remembered normal forms. */
        MeteorStats stats(String test, List<String> references) {
            String preparedTest = prepare(test);
            MeteorStats best = new MeteorStats();
            best.score = -1.0;
            for (String reference : references) {
                MeteorStats stats = scorer.getMeteorStats(
                        aligner.align(preparedTest, prepare(reference)));
                if (stats.score > best.score) {
                    best = stats;
                }
            }
            return best;
        }
    }

    /** A stemmer that remembers the stems of the words it has seen (one per worker). */
    static final class RememberingStemmer implements Stemmer {
        private final Stemmer inner;
        private final HashMap<String, String> stems = new HashMap<String, String>();

        RememberingStemmer(Stemmer inner) {
            this.inner = inner;
        }

        @Override
        public String stem(String word) {
            String stem = stems.get(word);
            if (stem == null) {
                stem = inner.stem(word);
                if (stems.size() >= MAX_REMEMBERED) {
                    stems.clear();
                }
                stems.put(word, stem);
            }
            return stem;
        }
    }

    private static Field field(Class<?> owner, String name) throws NoSuchFieldException {
        Field f = owner.getDeclaredField(name);
        f.setAccessible(true);
        return f;
    }

    /** The jar's -stdio answer to one request line (lines joined by '\n', no final one). */
    static String answer(String line) {
        Worker worker = WORKER.get();
        MeteorScorer scorer = worker.scorer;
        if (line.startsWith("SCORE") || line.startsWith("score")) {
            String[] parts = line.split(SEP);
            if (parts.length < 3) {
                return "Error: specify hypothesis and at least one reference";
            }
            ArrayList<String> refs = new ArrayList<String>();
            for (int i = 1; i < parts.length - 1; i++) {
                refs.add(parts[i].trim());
            }
            return worker.stats(parts[parts.length - 1].trim(), refs).toString();
        }
        if (line.startsWith("EVAL") || line.startsWith("eval")) {
            String[] parts = line.split(SEP);
            if (parts.length < 2) {
                return "Error: specify Meteor stats";
            }
            StringBuilder out = new StringBuilder();
            MeteorStats total = new MeteorStats();
            for (int i = 1; i < parts.length; i++) {
                MeteorStats stats = new MeteorStats(parts[i].trim());
                scorer.computeMetrics(stats);
                out.append(String.valueOf(stats.score)).append('\n');
                total.addStats(stats);
            }
            scorer.computeMetrics(total);
            return out.append(String.valueOf(total.score)).toString();
        }
        if (line.startsWith("SING") || line.startsWith("sing")) {
            String[] parts = line.split(SEP);
            if (parts.length != 2) {
                return "Error: specify Meteor stats";
            }
            MeteorStats stats = new MeteorStats(parts[1].trim());
            scorer.computeMetrics(stats);
            return String.valueOf(stats.score);
        }
        return "Error: specify SCORE or EVAL or SING";
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: MeteorThreads <threads> <test> <reference> [jar options]");
            System.exit(2);
        }
        int threads = Integer.parseInt(args[0]);
        String[] jarArgs = Arrays.copyOfRange(args, 1, args.length);
        Properties props = Meteor.createPropertiesFromArgs(jarArgs, 2);
        base = new MeteorScorer(new MeteorConfiguration(props));
        // The jar's normaliser fills static tables on first use: do that on this thread,
        // before any worker runs.
        base.getMeteorStats("warm up", new ArrayList<String>(Arrays.asList("warm up")));

        ExecutorService pool = Executors.newFixedThreadPool(threads, r -> {
            Thread t = new Thread(r, "meteor-worker");
            t.setDaemon(true);
            return t;
        });
        // Answers in request order; bounded, so a fast writer of requests waits for us.
        BlockingQueue<Future<String>> pending = new ArrayBlockingQueue<>(8192);
        Thread writer = new Thread(() -> {
            BufferedWriter out = new BufferedWriter(
                    new OutputStreamWriter(System.out, StandardCharsets.UTF_8), 1 << 16);
            try {
                while (true) {
                    Future<String> next = pending.poll();
                    if (next == null) {
                        out.flush();  // nothing ready: let the caller read what it has
                        next = pending.take();
                    }
                    if (next == END) {
                        break;
                    }
                    if (!next.isDone()) {
                        out.flush();
                    }
                    out.write(next.get());
                    out.write('\n');
                }
                out.flush();
            } catch (Throwable e) {
                // As an exception in the jar's loop: the error on stderr, then the process
                // ends (stdout stays open until then, so the caller finds the error).
                e.printStackTrace();
                System.err.flush();
                System.exit(1);
            }
        }, "meteor-writer");
        writer.start();

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
        String line;
        while ((line = in.readLine()) != null) {
            final String request = line;
            pending.put(pool.submit(() -> answer(request)));
        }
        pending.put(END);
        writer.join();
        pool.shutdownNow();
    }
}
