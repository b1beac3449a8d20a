package crypto_test

import (
	"fmt"

	"github.com/heraldrelay/herald/crypto"
)

func ExampleKeyring() {
	// The same ENCRYPTION_KEY the Worker uses; only its first 32 characters count.
	ring, err := crypto.NewKeyring("0123456789abcdef0123456789abcdef-and-more")
	if err != nil {
		panic(err)
	}
	sealed, _ := ring.Seal("https://discord.com/api/webhooks/1/token")
	plain, _ := ring.Open(sealed)
	fmt.Println(plain)
	// Output: https://discord.com/api/webhooks/1/token
}
