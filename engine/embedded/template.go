package embedded

import (
	"fmt"

	"github.com/ardanlabs/jinja"

	"github.com/cocoon-go/cocoon/engine"
)

// chatML is the template for models whose file has none.
const chatML = `{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`

// chatTemplate renders a conversation into the prompt text a model was
// trained on, from the Jinja template in its tokenizer.chat_template.
type chatTemplate struct {
	tmpl     *jinja.Template
	bos, eos string
}

func newChatTemplate(src, bos, eos string) (*chatTemplate, error) {
	if src == "" {
		src = chatML
	}
	t, err := jinja.Compile(src)
	if err != nil {
		return nil, fmt.Errorf("embedded: chat template: %w", err)
	}
	return &chatTemplate{tmpl: t, bos: bos, eos: eos}, nil
}

// render returns the prompt for msgs, ending where the assistant's answer
// begins.
func (t *chatTemplate) render(msgs []engine.Message) (string, error) {
	list := make([]any, len(msgs))
	for i, m := range msgs {
		list[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	return t.tmpl.Render(map[string]any{
		"messages":              list,
		"add_generation_prompt": true,
		"bos_token":             t.bos,
		"eos_token":             t.eos,
	})
}
