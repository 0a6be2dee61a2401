// SCRAM-SHA-256 both halves: RFC 7677's test vector, each refusal, and
// the verifier's text form.
#include <gtest/gtest.h>

#include <string>

#include "scram.hpp"

using namespace mctp::scram;

namespace {

// RFC 7677, section 3.
constexpr const char* client_nonce = "rOprNGfwEbeRWgbNEkqO";
constexpr const char* server_nonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr const char* server_first =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr const char* client_final =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr const char* server_final = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

Verifier pencil() { return make_verifier("pencil", *unbase64("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096); }

}  // namespace

TEST(Scram, Rfc7677ClientSide) {
    Client c("user", Binding::none, "", client_nonce);
    EXPECT_EQ(c.first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    std::string why;
    EXPECT_EQ(c.final(server_first, "pencil", &why).value_or(why), client_final);
    EXPECT_TRUE(c.verify(server_final, &why)) << why;
}

TEST(Scram, Rfc7677ServerSideFromTheVerifierOnly) {
    Server s(false, "", server_nonce);
    std::string why;
    EXPECT_EQ(s.start("n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &why).value_or(why), "user");
    EXPECT_EQ(s.first(pencil()), server_first);
    EXPECT_EQ(s.final(client_final, &why).value_or(why), server_final);
}

TEST(Scram, VerifierTextRoundTrips) {
    const Verifier v = pencil();
    const std::string text = format_verifier(v);
    EXPECT_TRUE(text.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$")) << text;
    const auto back = parse_verifier(text);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->salt, v.salt);
    EXPECT_EQ(back->iterations, 4096U);
    EXPECT_EQ(back->stored_key, v.stored_key);
    EXPECT_EQ(back->server_key, v.server_key);
    for (const char* bad : {"", "SCRAM-SHA-256$", "SCRAM-SHA-1$4096:W22ZaJ0SNY7soEsUEjb6gQ==$a:b",
                            "SCRAM-SHA-256$100:W22ZaJ0SNY7soEsUEjb6gQ==$AAAA:AAAA",
                            "SCRAM-SHA-256$4096:c2hvcnQ=$AAAA:AAAA",
                            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$AAAA:AAAA",
                            "SCRAM-SHA-256$04096:W22ZaJ0SNY7soEsUEjb6gQ==$AAAA:AAAA"}) {
        std::string why;
        EXPECT_FALSE(parse_verifier(bad, &why)) << bad;
        EXPECT_FALSE(why.empty()) << bad;
    }
}

TEST(Scram, ClientAndServerAgreeWithRandomNonces) {
    const Verifier v = make_verifier("a-random-256-bit-secret", random_salt(), 4096);
    Client c("control1");
    Server s;
    std::string why;
    ASSERT_EQ(s.start(c.first(), &why).value_or(why), "control1");
    const auto cf = c.final(s.first(v), "a-random-256-bit-secret", &why);
    ASSERT_TRUE(cf) << why;
    const auto sf = s.final(*cf, &why);
    ASSERT_TRUE(sf) << why;
    EXPECT_TRUE(c.verify(*sf, &why)) << why;
}

TEST(Scram, AWrongSecretFailsTheProof) {
    Client c("user", Binding::none, "", client_nonce);
    Server s(false, "", server_nonce);
    std::string why;
    ASSERT_TRUE(s.start(c.first(), &why));
    const auto cf = c.final(s.first(pencil()), "pencil2", &why);
    ASSERT_TRUE(cf);
    EXPECT_FALSE(s.final(*cf, &why));
    EXPECT_EQ(why, "wrong proof");
}

// A target that does not hold this controller's verifier (an impostor
// with a verifier of its own, or a replayed signature) is found out
// before anything else is sent.
TEST(Scram, AnImpostorTargetFailsTheServerSignature) {
    Client c("user");  // a fresh random nonce, as in use: nothing to replay
    Server impostor(false, "", server_nonce);
    std::string why;
    ASSERT_TRUE(impostor.start(c.first(), &why));
    const Verifier other = make_verifier("not-pencil", *unbase64("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);
    const auto cf = c.final(impostor.first(other), "pencil", &why);
    ASSERT_TRUE(cf);
    EXPECT_FALSE(impostor.final(*cf, &why));  // it cannot check the proof either
    // And whatever it answers, the signature does not verify: not the one
    // of RFC 7677's exchange (a replay), not its own.
    EXPECT_FALSE(c.verify(server_final, &why));
    EXPECT_FALSE(c.verify(impostor.final(*cf, &why).value_or("v=AAAA"), &why));
    EXPECT_FALSE(c.verify("v=AAAA", &why));
    EXPECT_FALSE(c.verify("e=other-error", &why));
    Client fresh("user", Binding::none, "", client_nonce);
    EXPECT_FALSE(fresh.verify(server_final, &why));  // no exchange yet
}

TEST(Scram, TheClientRefusesAHostileServerFirst) {
    std::string why;
    for (const char* bad :
         {"r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",  // not our nonce
          "r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",  // not extended
          "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4095",  // too few
          "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999",  // too many
          "r=rOprNGfwEbeRWgbNEkqOx,s=c2hvcnQ=,i=4096",  // salt too short
          "r=rOprNGfwEbeRWgbNEkqOx,s=!!!!,i=4096",
          "m=ext,r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
          "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,x=1", ""}) {
        Client c("user", Binding::none, "", client_nonce);
        why.clear();
        EXPECT_FALSE(c.final(bad, "pencil", &why)) << bad;
        EXPECT_FALSE(why.empty()) << bad;
    }
}

TEST(Scram, TheServerRefusesBadClientMessages) {
    std::string why;
    for (const char* bad : {"", "n,,", "n,a=authz,n=user,r=abc", "x,,n=user,r=abc",
                            "n,,n=us,er,r=abc", "n,,n=user", "n,,n=user,r=abc,m=ext",
                            "n,,n=us=2Cer,r=abc", "p=tls-unique,,n=user,r=abc"}) {
        Server s(false, "", server_nonce);
        EXPECT_FALSE(s.start(bad, &why)) << bad;
    }
    Server s(false, "", server_nonce);
    ASSERT_TRUE(s.start("n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &why));
    s.first(pencil());
    const std::string good = client_final;
    for (const std::string& bad :
         {std::string("c=eSws,") + good.substr(good.find("r=")),  // claims "y"
          good.substr(0, good.find(",p=")) + ",p=AAAA", std::string("r=x,c=biws,p=AAAA"),
          good + ",x=1", good.substr(0, good.find("r=") + 3) + "X" + good.substr(good.find("r=") + 3)}) {
        EXPECT_FALSE(s.final(bad, &why)) << bad;
    }
}

TEST(Scram, ChannelBindingTlsExporter) {
    const std::string cb(32, 'x');
    const Verifier v = pencil();
    std::string why;
    {   // Both bound to the same TLS connection.
        Client c("user", Binding::tls_exporter, cb);
        Server s(true, cb);
        ASSERT_TRUE(s.start(c.first(), &why)) << why;
        const auto cf = c.final(s.first(v), "pencil", &why);
        ASSERT_TRUE(cf);
        const auto sf = s.final(*cf, &why);
        ASSERT_TRUE(sf) << why;
        EXPECT_TRUE(c.verify(*sf, &why));
    }
    {   // A man in the middle: two TLS connections, two exporters.
        Client c("user", Binding::tls_exporter, std::string(32, 'y'));
        Server s(true, cb);
        ASSERT_TRUE(s.start(c.first(), &why));
        const auto cf = c.final(s.first(v), "pencil", &why);
        EXPECT_FALSE(s.final(*cf, &why));
        EXPECT_EQ(why, "the channel binding does not match");
    }
    {   // "y" (could bind, thinks the server cannot) while PLUS is offered.
        Client c("user", Binding::client_only);
        Server s(true, cb);
        EXPECT_FALSE(s.start(c.first(), &why));
    }
    {   // Binding asked of a server without TLS 1.3.
        Client c("user", Binding::tls_exporter, cb);
        Server s(false, "");
        EXPECT_FALSE(s.start(c.first(), &why));
    }
}

TEST(Scram, Base64IsStrict) {
    EXPECT_EQ(unbase64("").value_or("?"), "");
    EXPECT_EQ(unbase64("YQ==").value_or("?"), "a");
    EXPECT_EQ(unbase64("YWI=").value_or("?"), "ab");
    for (const char* bad : {"YQ", "Y===", "YQ=a", "Y Q=", "YQ==YQ=="}) {
        EXPECT_FALSE(unbase64(bad)) << bad;
    }
    EXPECT_EQ(base64("ab"), "YWI=");
}

// base64 is this project's own since SCRAM left OpenSSL: RFC 4648's
// vectors, and every octet value through a round trip at every length
// modulo 3.
TEST(Scram, Base64Rfc4648) {
    const std::pair<const char*, const char*> vectors[] = {
        {"", ""},          {"f", "Zg=="},         {"fo", "Zm8="},        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
    for (const auto& [raw, text] : vectors) {
        EXPECT_EQ(base64(raw), text);
        EXPECT_EQ(unbase64(text).value_or("?"), raw);
    }
    std::string all;
    for (int i = 0; i < 256; ++i) {
        all += static_cast<char>(i);
    }
    for (std::size_t n : {254u, 255u, 256u}) {
        const std::string raw = all.substr(0, n);
        EXPECT_EQ(unbase64(base64(raw)).value_or("?"), raw) << n;
    }
    EXPECT_EQ(base64("\xff\xfe\xfd"), "//79");
}
